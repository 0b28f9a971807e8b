"""Retention during a run, on the real Redis (and Kafka for the whole `learn` path)."""

from __future__ import annotations

import pytest

from consumers.publisher import RegistryPublisher
from consumers.retention import RetainLast
from learning.online import OnlineLearner
from lifelong.config import Settings
from lifelong.wiring import build_online_run
from model_store import Registry
from stream.admin import delete_topics
from stream.producer import EventProducer
from stream.schema import Event
from stream.synthetic import SyntheticStream

pytestmark = pytest.mark.integration


def _cleanup(address: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(address)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture()
def registry(redis_service, unique, signing_key):
    reg = Registry.from_url(redis_service.address, prefix=f"it-{unique}")
    yield reg
    _cleanup(redis_service.address, f"it-{unique}")


def _event(i: int) -> Event:
    return Event(event_id=str(i), user_id=f"u{i % 7}", item_id=f"i{i % 11}", type="rating",
                 value=float(1 + i % 5), ts=float(i))


def test_keeps_the_last_versions_and_every_alias_target(registry) -> None:
    learner = OnlineLearner("BiasedMF")
    pub = RetainLast(RegistryPublisher(registry, "reco"), registry, "reco", keep_last=3,
                     grace_seconds=0, every_seconds=0)
    for i in range(12):
        learner.learn_one(_event(i))
        number = pub.publish(learner, {("events", 0): i + 1})
        if number == 2:
            registry.promote("reco", 2)
        kept = [v.number for v in registry.versions("reco")]
        assert len(kept) <= 3 + 2, kept  # the last 3, production, latest's rollback target
    kept = [v.number for v in registry.versions("reco")]
    # production (2) and the version `latest` would roll back to (11) are never deleted
    assert kept == [2, 10, 11, 12]
    assert pub.deleted == 12 - 4
    assert registry.load_object("reco", "production")[0].number == 2
    restored = registry.load_object("reco", "latest")[1]
    assert restored.events_seen == 12


def test_grace_keeps_young_versions(registry) -> None:
    pub = RetainLast(RegistryPublisher(registry, "reco"), registry, "reco", keep_last=1,
                     every_seconds=0)
    for _ in range(4):
        pub.publish(OnlineLearner(), {})
    assert [v.number for v in registry.versions("reco")] == [1, 2, 3, 4]
    assert pub.deleted == 0


def test_learn_prunes_during_the_run(kafka, redis_service, unique, signing_key) -> None:
    topic, prefix = f"it-keep-{unique}", f"it-{unique}"
    settings = Settings.from_env(topic=topic, dlq_topic=f"{topic}.dlq", prefix=prefix,
                                 group_id=f"it-keep-{unique}", model="reco",
                                 publish_every_events=150, keep_last=2,
                                 # a base at each 50% of the (small) model's size, so that old
                                 # chains can go (the 16 MiB floor would keep one chain here)
                                 compact_floor_bytes=0,
                                 # bases in line: which numbers are kept is then exact (a
                                 # child's base is numbered between two deltas: its own test,
                                 # tests/integration/model_store/test_forked_bases.py)
                                 base_writer="inline")
    run = build_online_run(settings, register_target=False, resume=False)
    try:
        assert isinstance(run.worker.publisher, RetainLast)
        assert run.worker.publisher.keep_last == 2
        # the defaults (60 s grace, a prune every 10 s) would outlast the test
        run.worker.publisher.grace_seconds = run.worker.publisher.every_seconds = 0
        with EventProducer(kafka.address, topic) as producer:
            producer.send_all(SyntheticStream(n_events=3000, seed=3))
        stats = run.worker.run(max_events=3000, idle_timeout=30)
        kept = [v.number for v in run.registry.versions("reco")]
        # a publish is due at most once a poll (up to 500 records): at least 6 versions
        assert stats.learned == 3000 and len(stats.versions) >= 6, stats
        # the last 2, and the one `latest` would roll back to, which is the second last
        assert kept == stats.versions[-2:], kept
        assert run.registry.latest("reco").number == stats.versions[-1]
    finally:
        run.close()
        delete_topics(kafka.address, [topic, f"{topic}.dlq"])
        _cleanup(redis_service.address, prefix)
