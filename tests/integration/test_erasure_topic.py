"""A running learner erases a user on a request from its erasure topic (real Kafka + Redis)."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from lifelong.cli import app
from lifelong.config import Settings
from lifelong.wiring import build_online_run
from stream.admin import delete_topics
from stream.producer import EventProducer
from stream.pseudonym import Pseudonymizer
from stream.schema import Event

pytestmark = pytest.mark.integration

RAW = "topic-erase-me"
KEY = "integration-topic-pseudonym-key-0123"


def test_learner_erases_on_a_topic_request(kafka, redis_service, unique, store_prefix,
                                           monkeypatch) -> None:
    topic, prefix = f"it-erase-{unique}", store_prefix  # the fixture deletes its keys after
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.address, "REDIS_URL": redis_service.address,
           "LIFELONG_TOPIC": topic, "LIFELONG_DLQ_TOPIC": f"{topic}.dlq",
           "LIFELONG_QUARANTINE_TOPIC": f"{topic}.q", "LIFELONG_ERASURE_TOPIC": f"{topic}.er",
           "LIFELONG_PREFIX": prefix, "LIFELONG_GROUP_ID": topic, "LIFELONG_MODEL": "reco",
           "LIFELONG_PSEUDONYM_KEY": KEY, "LIFELONG_PUBLISH_EVERY_EVENTS": "100000"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LIFELONG_PSEUDONYM_KEY_FILE", raising=False)
    pseudonym = Pseudonymizer(KEY.encode())(RAW)
    run = build_online_run(Settings.from_env(), register_target=False, resume=False)
    try:
        now = time.time()
        events = [Event(f"e{k}", [RAW, "other"][k % 2], f"i{k % 5}", "rating", 4.0, now - k)
                  for k in range(200)]
        with EventProducer(kafka.address, topic) as producer:
            producer.send_all(events)
        stats = run.worker.run(max_events=200, idle_timeout=30)
        assert stats.learned == 200
        first = run.registry.latest("reco")
        assert pseudonym.encode() in run.registry.read_blob("reco", first.number)
        assert RAW.encode() not in run.registry.read_blob("reco", first.number)

        result = CliRunner().invoke(app, ["forget", "--via-topic", "--user", RAW])
        assert result.exit_code == 0, result.output
        stats = run.worker.run(max_events=201, idle_timeout=30)
        assert stats.erasures == 1, stats
        latest = run.registry.latest("reco")
        assert latest.number > first.number
        assert latest.offsets[f"{topic}.er:0"] == 1  # the version covers the request
        assert pseudonym.encode() not in run.registry.read_blob("reco", latest.number)
    finally:
        run.close()
        delete_topics(kafka.address, [topic, f"{topic}.dlq", f"{topic}.q", f"{topic}.er"])


class _Down:
    """A store that is down: every publish fails (the learner dies before its checkpoint)."""

    def publish(self, learner, positions):
        raise ConnectionError("the store is down")


def test_an_erasure_survives_a_crash_before_the_next_checkpoint(kafka, redis_service, unique,
                                                                store_prefix, monkeypatch):
    topic, prefix = f"it-erase-crash-{unique}", store_prefix  # keys deleted by the fixture
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.address, "REDIS_URL": redis_service.address,
           "LIFELONG_TOPIC": topic, "LIFELONG_DLQ_TOPIC": f"{topic}.dlq",
           "LIFELONG_QUARANTINE_TOPIC": f"{topic}.q", "LIFELONG_ERASURE_TOPIC": f"{topic}.er",
           "LIFELONG_PREFIX": prefix, "LIFELONG_GROUP_ID": f"{topic}-a",
           "LIFELONG_MODEL": "reco", "LIFELONG_PSEUDONYM_KEY": KEY,
           "LIFELONG_PUBLISH_EVERY_EVENTS": "100000"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LIFELONG_PSEUDONYM_KEY_FILE", raising=False)
    pseudonym = Pseudonymizer(KEY.encode())(RAW).encode()
    first = build_online_run(Settings.from_env(), register_target=False, resume=False)
    second = None
    try:
        now = time.time()
        with EventProducer(kafka.address, topic) as producer:
            producer.send_all([Event(f"e{k}", [RAW, "other"][k % 2], "i1", "rating", 4.0,
                                     now - k) for k in range(100)])
        assert first.worker.run(max_events=100, idle_timeout=30).learned == 100
        before = first.registry.latest("reco")
        result = CliRunner().invoke(app, ["forget", "--via-topic", "--user", RAW])
        assert result.exit_code == 0, result.output
        first.worker.publisher = _Down()  # erased in memory, never checkpointed: a crash
        first.worker.process(first.source.poll(10.0) or first.source.poll(10.0))
        assert first.worker.stats.erasures == 1 and first.worker.publish() is None
        assert first.registry.latest("reco").number == before.number  # nothing published
        assert pseudonym in first.registry.read_blob("reco", before.number)

        monkeypatch.setenv("LIFELONG_GROUP_ID", f"{topic}-b")  # resume from the version
        second = build_online_run(Settings.from_env(), register_target=False, resume=True)
        assert second.resumed_from == before.number
        stats = second.worker.run(max_events=1, idle_timeout=30)
        assert stats.erasures == 1 and stats.learned == 0  # the request came again
        latest = second.registry.latest("reco")
        assert latest.number > before.number and latest.offsets[f"{topic}.er:0"] == 1
        assert pseudonym not in second.registry.read_blob("reco", latest.number)
    finally:
        first.close()
        if second is not None:
            second.close()
        delete_topics(kafka.address, [topic, f"{topic}.dlq", f"{topic}.q", f"{topic}.er"])
