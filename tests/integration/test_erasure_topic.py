"""A running learner erases a user on a request from its erasure topic (real Kafka + Redis)."""

from __future__ import annotations

import time

import pytest
import redis
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


def test_learner_erases_on_a_topic_request(kafka, redis_service, unique, signing_key,
                                           monkeypatch) -> None:
    topic, prefix = f"it-erase-{unique}", f"it-erase-{unique}"
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
        client = redis.Redis.from_url(redis_service.address)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
