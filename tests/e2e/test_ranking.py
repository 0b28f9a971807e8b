"""A click stream through `lifelong learn --task ranking`, as a user runs it, on the real
Kafka, Redis and Prometheus: the learner's rolling HR@10 (its /metrics, Prometheus and the
published version) beats decayed popularity on the same events, and a subscriber's
`recommend` gives a user ten items they have not seen."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from learning.ranking_learner import RankingLearner
from model_store import Registry
from model_store.subscriber import Subscriber
from monitoring.promql import wait_for_value
from stream.admin import TopicSpec, delete_topics, ensure_topics
from stream.producer import EventProducer
from stream.synthetic_implicit import ImplicitStream

pytestmark = pytest.mark.e2e

N_EVENTS = 4000
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _sample(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture()
def names(kafka, redis_service, unique, signing_key):
    topic = f"e2e-rank-{unique}"
    topics = [topic, f"{topic}.dlq", f"{topic}.quarantine"]
    ensure_topics(kafka.address, [TopicSpec(topic, 1)])  # one partition: the stream's order
    yield {"topic": topic, "prefix": f"e2e-{unique}", "model": f"rank-{unique}"}
    delete_topics(kafka.address, topics)
    import redis

    client = redis.Redis.from_url(redis_service.address)
    keys = list(client.scan_iter(f"e2e-{unique}:*"))
    if keys:
        client.delete(*keys)


def test_learn_ranking_beats_popularity_and_serves_unseen_items(kafka, redis_service,
                                                                 prometheus, names):
    events = list(ImplicitStream(n_events=N_EVENTS, drift_at=(N_EVENTS // 2,), seed=11))
    # The baseline, through the same protocol on the same events in the same order.
    baseline = RankingLearner("decayed-popularity")
    for event in events:
        baseline.learn_one(event)
    base = baseline.score()

    with EventProducer(kafka.address, names["topic"]) as producer:
        assert producer.send_all(ImplicitStream(n_events=N_EVENTS, drift_at=(N_EVENTS // 2,),
                                                seed=11).raw()) == N_EVENTS
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": kafka.address,
           "REDIS_URL": redis_service.address, "LIFELONG_TOPIC": names["topic"],
           "LIFELONG_DLQ_TOPIC": f"{names['topic']}.dlq",
           "LIFELONG_QUARANTINE_TOPIC": f"{names['topic']}.quarantine",
           "LIFELONG_PARTITIONS": "1", "LIFELONG_PREFIX": names["prefix"],
           "LIFELONG_GROUP_ID": f"g-{names['model']}", "LIFELONG_METRICS_PORT": str(port),
           "LIFELONG_PUBLISH_EVERY_EVENTS": "1500", "LIFELONG_TASK": "ranking"}
    proc = subprocess.Popen([sys.executable, "-m", "lifelong", "learn", "--model",
                             names["model"], "--idle-timeout", "40"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    model = names["model"]
    try:
        deadline, samples = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            try:
                samples = _scrape(port)
            except OSError:
                samples = {}
            learned = _sample(samples, "lifelong_learner_events_learned_total", model=model,
                              topic=names["topic"])
            if learned == N_EVENTS:
                break
            time.sleep(0.5)
        assert _sample(samples, "lifelong_learner_events_learned_total", model=model,
                       topic=names["topic"]) == N_EVENTS, "the learner did not learn every event"
        evaluated = _sample(samples, "lifelong_learner_ranking_evaluated_total", model=model)
        hr = _sample(samples, "lifelong_learner_ranking_hit_ratio", model=model, k="10")
        ndcg = _sample(samples, "lifelong_learner_ranking_ndcg_ratio", model=model, k="10")
        coverage = _sample(samples, "lifelong_learner_ranking_coverage_ratio", model=model,
                           k="10")
        # Same events, same order, same protocol: exactly the events the baseline ranked.
        assert evaluated == base.n > 500
        assert hr is not None and ndcg is not None and coverage is not None
        assert hr > base.rolling_hr and ndcg > base.rolling_ndcg, (hr, base.rolling_hr)
        assert 0.0 < coverage <= 1.0
        # Prometheus scrapes the learner (it registered itself as a target).
        seen = wait_for_value(prometheus.address,
                              f'lifelong_learner_ranking_hit_ratio{{model="{model}",k="10"}}',
                              lambda v: abs(v - hr) < 1e-9, timeout=20)
        assert seen == pytest.approx(hr), f"Prometheus has {seen}, /metrics {hr}"
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output[-3000:]

    registry = Registry.from_url(redis_service.address, prefix=names["prefix"])
    version = registry.latest(model)
    assert version is not None and version.metrics["rolling_hr@10"] == hr
    assert version.tags["model_kind"] == "rerank"
    seen_by: dict[str, set[str]] = {}
    for event in events:
        seen_by.setdefault(event.user_id, set()).add(event.item_id)
    with Subscriber(registry, model) as subscriber:
        assert subscriber.wait_for_version(version.number, timeout=20)
        for user in sorted(seen_by, key=lambda u: -len(seen_by[u]))[:5]:
            recommended = [item for item, _ in subscriber.recommend(user, 10)]
            assert len(recommended) == len(set(recommended)) == 10
            assert not set(recommended) & seen_by[user], user
        cold = [item for item, _ in subscriber.recommend("a-user-never-seen", 10)]
        assert len(cold) == 10
