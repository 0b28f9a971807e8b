"""`lifelong produce` puts every record of a file or a synthetic stream on the topic."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer
from typer.testing import CliRunner

from lifelong.cli import app
from stream.admin import delete_topics
from stream.schema import Event, decode
from stream.synthetic import SyntheticStream, write

pytestmark = pytest.mark.integration


def _read_all(bootstrap: str, topic: str, n: int) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10_000, group_id=f"{topic}-reader")
    try:
        return [m for _, m in zip(range(n), consumer, strict=False)]
    finally:
        consumer.close()


@pytest.mark.parametrize("source", ["file", "synthetic"])
def test_produce_sends_every_record_keyed_by_user(kafka, unique, tmp_path, monkeypatch, source):
    topic = f"it-produce-{source}-{unique}"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.address)
    monkeypatch.setenv("LIFELONG_DLQ_TOPIC", f"{topic}.dlq")
    if source == "file":
        data = tmp_path / "ratings.csv"
        write(SyntheticStream(n_events=700, seed=2), data, "csv")
        args = [str(data), "--format", "csv", "--sort-by-time"]
    else:
        args = ["--synthetic", "--events", "700", "--invalid-rate", "0.05", "--rate", "5000"]
    try:
        result = CliRunner().invoke(app, ["produce", *args, "--topic", topic])
        assert result.exit_code == 0, result.output
        assert f"sent 700 records to topic '{topic}'" in result.output
        messages = _read_all(kafka.address, topic, 700)
        assert len(messages) == 700
        for m in messages:
            event = decode(m.value)
            if isinstance(event, Event):
                assert m.key == event.user_id.encode()
            else:
                assert m.key is None  # invalid records go through unkeyed, for the DLQ
    finally:
        delete_topics(kafka.address, [topic, f"{topic}.dlq"])


def test_produce_refuses_both_or_neither_source(kafka, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.address)
    result = CliRunner().invoke(app, ["produce"])
    assert result.exit_code == 2 and "exactly one of FILE or --synthetic" in result.output
