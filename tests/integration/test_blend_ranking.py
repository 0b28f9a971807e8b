"""Fast and slow together for ranking, on the real servers: `lifelong finetune --task ranking`
publishes a deep ranker; `learn --task ranking --blend-with` follows its production version,
mixes it into the online ranker, folds every event into the user side, and publishes the
mix, which a subscriber then serves (`recommend`)."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from learning.ranking_learner import RankingLearner
from lifelong.config import Settings
from lifelong.wiring import build_online_run
from model_store import Registry
from model_store.subscriber import Subscriber
from stream.producer import EventProducer
from stream.synthetic_implicit import ImplicitStream
from tests.integration.test_blend import run_worker

pytestmark = pytest.mark.integration

DEEP = "clicks-deep"


def test_learn_ranking_follows_the_fine_tuners_deep_ranker(kafka, redis_service, events_topic,
                                                          store_prefix, unique, monkeypatch):
    import torch

    from lifelong.cli import app

    torch.set_num_threads(1)
    stream = ImplicitStream(n_users=80, n_items=150, n_events=3000, drift_at=(), seed=4)
    raw = list(stream.raw())
    events = list(ImplicitStream(n_users=80, n_items=150, n_events=3000, drift_at=(),
                                 seed=4))
    with EventProducer(kafka.address, events_topic) as producer:
        producer.send_all(raw[:1500])
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.address, "REDIS_URL": redis_service.address,
           "LIFELONG_PREFIX": store_prefix, "LIFELONG_TOPIC": events_topic,
           "LIFELONG_MODEL": "clicks", "LIFELONG_QUALITY": "off"}
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    result = CliRunner().invoke(app, [
        "finetune", "--task", "ranking", "--model", DEEP, "--group", f"ft-{unique}",
        "--round-every-events", "700", "--min-fresh", "200", "--factors", "8",
        "--batch-size", "256", "--device", "cpu", "--max-events", "1500",
        "--idle-timeout", "20", "--negatives", "16"])
    assert result.exit_code == 0, result.output
    registry = Registry.from_url(redis_service.address, prefix=store_prefix)
    production = registry.get(DEEP, "production")
    assert production.format == "deep-ranking"

    with EventProducer(kafka.address, events_topic) as producer:
        producer.send_all(raw[1500:])
    settings = Settings.from_env({}, kafka_bootstrap=kafka.address,
                                 redis_url=redis_service.address, topic=events_topic,
                                 dlq_topic=f"{events_topic}.dlq", group_id=f"learn-{unique}",
                                 prefix=store_prefix, model="clicks", task="ranking",
                                 publish_every_events=1000, quality="off")
    run = build_online_run(settings, blend_with=DEEP, register_target=False)
    learner = run.worker.learner
    assert isinstance(learner, RankingLearner) and learner.follows_deep
    deadline = time.monotonic() + 20
    while learner.deep_version != production.number:
        assert time.monotonic() < deadline, "the deep ranker never arrived"
        time.sleep(0.05)
    run_worker(run, max_events=3000, timeout=120)
    assert run.worker.stats.learned == 3000
    part = learner.ranker.deep
    assert part._model is not None and (part._deep_row >= 0).sum() > 100  # items mapped by id
    assert len(part._fold) > 50  # every event folded into its user's side
    assert learner.score().n > 500

    latest = registry.latest("clicks")
    assert latest is not None and latest.tags["deep_version"] == str(production.number)
    seen_by: dict[str, set[str]] = {}
    for event in events:
        seen_by.setdefault(event.user_id, set()).add(event.item_id)
    with Subscriber(registry, "clicks") as sub:
        assert sub.wait_for_version(latest.number, timeout=20)
        served = sub.current[1]
        assert getattr(served, "learner", served).deep_version == production.number
        for user in sorted(seen_by, key=lambda u: -len(seen_by[u]))[:3]:
            items = [item for item, _ in sub.recommend(user, 10)]
            assert len(set(items)) == 10 and not set(items) & seen_by[user]
        assert len(sub.recommend("a-user-never-seen", 10)) == 10
    registry.close()
