"""Hostile inputs on the real broker: poison, tombstones and huge records all land somewhere."""

from __future__ import annotations

import math
import time

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer

from consumers.checkpoint import Checkpoint
from lifelong.config import Settings
from lifelong.wiring import build_online_run
from model_store import Registry
from stream.admin import delete_topics
from stream.producer import EventProducer
from stream.schema import Event

pytestmark = pytest.mark.integration
NOW = time.time()


@pytest.fixture()
def settings(kafka, redis_service, unique, signing_key):
    s = Settings(kafka_bootstrap=kafka.address, redis_url=redis_service.address,
                 topic=f"it-faults-{unique}", dlq_topic=f"it-faults-{unique}.dlq",
                 quarantine_topic=f"it-faults-{unique}.quarantine", partitions=1,
                 group_id=f"it-faults-{unique}", prefix=f"it-faults-{unique}",
                 publish_every_events=50)
    yield s
    delete_topics(kafka.address, [s.topic, s.dlq_topic, s.quarantine_topic])
    client = redis.Redis.from_url(redis_service.address)
    keys = list(client.scan_iter(f"{s.prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _read(bootstrap: str, topic: str, n: int, timeout: float = 20.0) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=1000, max_partition_fetch_bytes=2 << 20,
                             fetch_max_bytes=4 << 20)
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            out.extend(consumer)
    finally:
        consumer.close()
    return out


def test_poison_tombstones_and_huge_records_each_reach_their_topic(settings, kafka):
    run = build_online_run(settings, register_target=False, resume=False)
    good = [Event(f"g{k}", f"u{k % 5}", f"i{k % 9}", "rating", float(k % 5 + 1), NOW - 100 + k)
            for k in range(120)]
    poison = [Event("p1", "u1", "i1", "rating", 1e308, NOW),
              Event("p2", "u1", "i1", "rating", 3.0, 1e15)]
    huge = b'{"event_id":"' + b"x" * 1_040_000 + b'"}'
    with EventProducer(kafka.address, settings.topic) as producer:
        producer.send_all(good[:60])
        producer.send_all(poison)
    raw = KafkaProducer(bootstrap_servers=kafka.address, acks="all")
    raw.send(settings.topic, value=None, key=b"u1")  # a tombstone
    raw.send(settings.topic, value=huge, key=b"u2")
    raw.flush()
    raw.close()
    with EventProducer(kafka.address, settings.topic) as producer:
        producer.send_all(good[60:])
    try:
        stats = run.worker.run(max_events=124, idle_timeout=20)
    finally:
        run.close()
    assert (stats.learned, stats.quarantined, stats.invalid) == (120, 2, 2)
    registry = Registry.from_url(settings.redis_url, prefix=settings.prefix)
    latest = registry.latest(settings.model)
    assert latest is not None and latest.offsets == {f"{settings.topic}:0": 124}
    _, learner = registry.load_object(settings.model, "latest")
    assert math.isfinite(learner.score().rmse) and learner.events_seen == 120

    quarantined = _read(kafka.address, settings.quarantine_topic, 2)
    reasons = sorted(dict(m.headers)["reason"].decode().split(":")[0] for m in quarantined)
    assert reasons == ["ts_future", "value_range"]
    dead = _read(kafka.address, settings.dlq_topic, 2)
    assert len(dead) == 2
    by_offset = {int(dict(m.headers)["source.offset"]): m for m in dead}
    tomb, cut = by_offset[62], by_offset[63]
    assert tomb.value is None and dict(tomb.headers)["reason"].startswith(b"tombstone")
    h = dict(cut.headers)
    assert h["reason"].startswith(b"too_large") and h["dlq.truncated"] == b"true"
    assert int(h["source.size"]) == len(huge) and huge.startswith(cut.value)


# -- finding 3: the resume offsets are signed --------------------------------------------------
def test_tampered_offsets_are_refused_by_the_learner_and_by_verify(settings, kafka,
                                                                     monkeypatch):
    from typer.testing import CliRunner

    from lifelong.cli import app
    from model_store import IntegrityError

    events = [Event(f"g{k}", f"u{k % 5}", f"i{k % 9}", "rating", 3.0, NOW - 100 + k)
              for k in range(80)]
    run = build_online_run(settings, register_target=False, resume=False)
    with EventProducer(kafka.address, settings.topic) as producer:
        producer.send_all(events)
    try:
        run.worker.run(max_events=80, idle_timeout=20)
    finally:
        run.close()
    registry = Registry.from_url(settings.redis_url, prefix=settings.prefix)
    latest = registry.latest(settings.model)
    assert latest is not None and latest.offsets == {f"{settings.topic}:0": 80}
    client = redis.Redis.from_url(settings.redis_url)
    client.hset(f"{settings.prefix}:{{{settings.model}}}:v:{latest.number}", "offsets",
                f'{{"{settings.topic}:0": 0}}')
    client.close()

    with pytest.raises(IntegrityError, match="bad signature"):
        build_online_run(settings, register_target=False, resume=True)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("LIFELONG_PREFIX", settings.prefix)
    result = CliRunner().invoke(app, ["models", "verify", settings.model, str(latest.number)])
    assert result.exit_code == 1, result.output
    assert "bad signature" in result.output


# -- finding 4: the dedup window is part of the checkpoint -------------------------------------
def test_duplicates_re_sent_across_a_clean_restart_are_not_learned(settings, kafka):
    events = [Event(f"d{k}", f"u{k % 50}", f"i{k % 70}", "rating", float(k % 5 + 1),
                    NOW - 5000 + k) for k in range(3000)]
    run = build_online_run(settings, register_target=False, resume=False)
    with EventProducer(kafka.address, settings.topic) as producer:
        producer.send_all(events)
    try:
        run.worker.run(max_events=3000, idle_timeout=20)
    finally:
        run.close()
    with EventProducer(kafka.address, settings.topic) as producer:
        producer.send_all(events[-100:])  # a producer retrying after a timeout
    run = build_online_run(settings, register_target=False, resume=True)
    assert run.resumed_from is not None
    try:
        stats = run.worker.run(max_events=100, idle_timeout=20)
        window = run.worker.checkpoint().dedup
    finally:
        run.close()
    assert (stats.duplicates, stats.learned) == (100, 0)
    registry = Registry.from_url(settings.redis_url, prefix=settings.prefix)
    latest = registry.latest(settings.model)
    assert latest.extra["events_seen"] == 3000 and latest.offsets == {f"{settings.topic}:0": 3100}
    # the version after the restart continues the resumed chain (a delta, or a base when
    # one is due): either way the dedup window travels with it and a resume restores it
    _, obj = registry.load_object(settings.model, latest.number)
    assert Checkpoint.of(obj).dedup == window and len(window) // 8 == 3000
