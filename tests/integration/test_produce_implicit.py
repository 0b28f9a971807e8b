"""`lifelong produce --synthetic --implicit` puts a click stream on a real topic."""

from __future__ import annotations

from collections import Counter

import pytest
from kafka import KafkaConsumer
from typer.testing import CliRunner

from lifelong.cli import app
from stream.admin import delete_topics
from stream.schema import Event, decode
from stream.synthetic_implicit import ImplicitStream

pytestmark = pytest.mark.integration


def test_produce_implicit_sends_the_click_stream_keyed_by_user(kafka, unique, monkeypatch):
    topic = f"it-produce-implicit-{unique}"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.address)
    monkeypatch.setenv("LIFELONG_DLQ_TOPIC", f"{topic}.dlq")
    try:
        result = CliRunner().invoke(app, ["produce", "--synthetic", "--implicit", "--events",
                                          "600", "--seed", "9", "--topic", topic])
        assert result.exit_code == 0, result.output
        assert f"sent 600 records to topic '{topic}'" in result.output
        consumer = KafkaConsumer(topic, bootstrap_servers=kafka.address,
                                 auto_offset_reset="earliest", consumer_timeout_ms=10_000,
                                 group_id=f"{topic}-reader")
        try:
            messages = [m for _, m in zip(range(600), consumer, strict=False)]
        finally:
            consumer.close()
        events = [decode(m.value) for m in messages]
        assert all(isinstance(e, Event) for e in events) and len(events) == 600
        assert all(m.key == e.user_id.encode() for m, e in zip(messages, events, strict=True))
        expected = list(ImplicitStream(n_events=600, drift_at=(300,), seed=9))
        assert sorted(e.event_id for e in events) == sorted(e.event_id for e in expected)
        assert set(Counter(e.type for e in events)) == {"view", "click", "cart", "purchase"}
    finally:
        delete_topics(kafka.address, [topic, f"{topic}.dlq"])
