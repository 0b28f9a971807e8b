"""The skeleton on the real servers: producer -> Kafka -> learner -> Redis, DLQ, Prometheus."""

from __future__ import annotations

import threading

import pytest
from kafka import KafkaConsumer
from prometheus_client import CollectorRegistry

from consumers.dlq import KafkaDeadLetters
from consumers.kafka_source import KafkaSource
from consumers.publisher import RegistryPublisher
from consumers.worker import LearnerWorker
from deploy.services import add_scrape_target, remove_scrape_target
from learning.online import OnlineLearner
from model_store import Registry
from model_store.subscriber import Subscriber
from monitoring.exposition import MetricsServer
from monitoring.metrics import LearnerMetrics
from monitoring.promql import wait_for_value
from stream.admin import TopicSpec, delete_topics, ensure_topics
from stream.producer import EventProducer
from stream.synthetic import SyntheticStream

pytestmark = pytest.mark.integration

N_EVENTS = 1200
INVALID_RATE = 0.05


@pytest.fixture()
def topics(kafka, unique):
    names = (f"it-events-{unique}", f"it-events-{unique}.dlq")
    ensure_topics(kafka.address, [TopicSpec(names[0], 3), TopicSpec(names[1], 1)])
    yield names
    delete_topics(kafka.address, list(names))


@pytest.fixture()
def registry(redis_service, unique, signing_key):
    reg = Registry.from_url(redis_service.address, prefix=f"it-{unique}")
    yield reg
    import redis

    client = redis.Redis.from_url(redis_service.address)
    keys = list(client.scan_iter(f"it-{unique}:*"))
    if keys:
        client.delete(*keys)


def _run_learner(kafka, topics, registry, unique, metrics=None, expected=N_EVENTS):
    source = KafkaSource(kafka.address, [topics[0]], f"it-group-{unique}")
    dlq = KafkaDeadLetters(kafka.address, topics[1])
    worker = LearnerWorker(source, OnlineLearner("BiasedMF", clip=(1, 5)), dlq,
                           publisher=RegistryPublisher(registry, "reco"),
                           publish_every_events=400, metrics=metrics)
    stop = threading.Event()
    done = threading.Event()
    stats_box = {}

    def progress(stats):
        if stats.consumed >= expected:
            done.set()
            stop.set()

    thread = threading.Thread(target=lambda: stats_box.update(
        s=worker.run(stop=stop, on_batch=progress, idle_timeout=60)))
    thread.start()
    thread.join(timeout=120)
    stop.set()
    thread.join(timeout=30)
    source.close()
    dlq.close()
    assert done.is_set(), f"learner consumed {worker.stats.consumed} of {expected} in time"
    return stats_box["s"]


def test_events_flow_from_producer_through_kafka_to_versions_in_redis(kafka, topics, registry,
                                                                      unique):
    stream = SyntheticStream(n_events=N_EVENTS, drift_at=(600,), seed=3, invalid_rate=INVALID_RATE)
    with EventProducer(kafka.address, topics[0]) as producer:
        sent = producer.send_all(stream.raw())
    assert sent == N_EVENTS
    stats = _run_learner(kafka, topics, registry, unique)

    n_invalid = len(stream.corruption_plan())
    assert stats.consumed == N_EVENTS
    assert stats.invalid == n_invalid and stats.learned == N_EVENTS - n_invalid
    versions = registry.versions("reco")
    assert [v.number for v in versions] == sorted(v.number for v in versions)
    assert len(versions) == len(stats.versions) >= 3
    latest = versions[-1]
    assert latest.extra["events_seen"] == stats.learned
    # the last version covers every partition up to the end: the offsets add up to the count
    assert sum(latest.offsets.values()) == N_EVENTS
    _, learner = registry.load_object("reco", latest.number)
    assert 1.0 <= learner.predict_one("u1", "i1") <= 5.0
    # a subscribing service loads the latest version and predicts with it
    with Subscriber(registry, "reco") as subscriber:
        assert subscriber.wait_for_version(latest.number, timeout=15)
        assert subscriber.current[0].number == latest.number
        assert subscriber.predict("u1", "i1") == learner.predict_one("u1", "i1")

    # invalid records are in the DLQ, bytes unchanged, with the reason in a header
    consumer = KafkaConsumer(topics[1], bootstrap_servers=kafka.address,
                             auto_offset_reset="earliest", consumer_timeout_ms=10_000,
                             group_id=f"dlq-reader-{unique}")
    dead = [m for _, m in zip(range(n_invalid), consumer, strict=False)]
    consumer.close()
    assert len(dead) == n_invalid
    planned = stream.corruption_plan()
    for m in dead:
        headers = dict(m.headers)
        assert headers["reason"].decode().split(":")[0] in {"schema", "malformed", "encoding",
                                                             "too_large"}
        assert headers["source.topic"].decode() == topics[0]
    assert len(planned) == len(dead)


def test_prometheus_scrapes_the_learner_and_promql_counts_every_event(kafka, topics, registry,
                                                                       prometheus, unique):
    stream = SyntheticStream(n_events=600, drift_at=(300,), seed=4, invalid_rate=0.02)
    with EventProducer(kafka.address, topics[0]) as producer:
        sent = producer.send_all(stream.raw())
    reg = CollectorRegistry()
    metrics = LearnerMetrics(reg, model="reco", topic=topics[0])
    server = MetricsServer(reg, port=0)
    job = f"it-learner-{unique}"
    add_scrape_target(job, server.target)
    try:
        _run_learner(kafka, topics, registry, unique, metrics=metrics, expected=sent)
        expr = f'sum(lifelong_learner_events_consumed_total{{topic="{topics[0]}"}})'
        seen = wait_for_value(prometheus.address, expr, lambda v: v >= sent, timeout=45)
        assert seen == sent
        rmse = wait_for_value(prometheus.address,
                              f'lifelong_learner_prequential_rmse{{job="{job}"}}',
                              lambda v: v > 0, timeout=15)
        assert rmse is not None and 0 < rmse < 4
    finally:
        remove_scrape_target(job)
        server.close()
