"""Fast and slow together on the real servers: the online learner blends the deep model.

A deep version is published as the fine-tune worker would; `learn --blend-with` follows its
`production` alias, folds every event into its user side, and publishes the River + deep
blend, which a subscriber then serves.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import redis

from consumers.checkpoint import Checkpoint
from consumers.deep_publisher import DeepPublisher
from learning.finetune import FineTuner
from learning.lifelong import LifelongLearner
from learning.serving import LifelongModel
from learning.torch_models import DeepRecommender
from lifelong.config import Settings
from lifelong.wiring import build_online_run
from model_store import Registry
from model_store.subscriber import Subscriber
from stream.admin import delete_topics
from stream.producer import EventProducer
from stream.synthetic import SyntheticStream

pytestmark = pytest.mark.integration


@pytest.fixture()
def settings(kafka, redis_service, unique, signing_key):
    s = Settings.from_env({}, kafka_bootstrap=kafka.address, redis_url=redis_service.address,
                          topic=f"it-blend-{unique}", dlq_topic=f"it-blend-{unique}.dlq",
                          group_id=f"it-blend-{unique}", prefix=f"it-blend-{unique}",
                          model="reco", publish_every_events=500)
    yield s
    delete_topics(kafka.address, [s.topic, s.dlq_topic])
    client = redis.Redis.from_url(redis_service.address)
    keys = list(client.scan_iter(f"{s.prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def run_worker(run, *, max_events: int, timeout: float) -> None:
    """Run ``run``'s worker in a thread for ``max_events`` (stopped after ``timeout``), close."""
    stop = threading.Event()
    thread = threading.Thread(target=lambda: run.worker.run(
        stop=stop, max_events=max_events, idle_timeout=30))
    thread.start()
    thread.join(timeout)
    stop.set()
    thread.join(10)
    run.close()


def test_online_learner_blends_the_production_deep_model(settings):
    stream = SyntheticStream(n_users=150, n_items=200, n_events=3000, drift_at=(), seed=21)
    events = list(stream)
    # the slow learner's work: a deep model trained on a backlog, published and promoted
    deep = DeepRecommender(n_factors=8, clip=(1.0, 5.0), seed=0)
    backlog = events[:1500]
    FineTuner(deep, device="cpu", batch_size=256, epochs_per_round=5).train_full(
        [e.user_id for e in backlog], [e.item_id for e in backlog],
        np.asarray([e.value for e in backlog], dtype=np.float32),
        np.asarray([e.ts for e in backlog]))
    registry = Registry.from_url(settings.redis_url, prefix=settings.prefix)
    publisher = DeepPublisher(registry, "reco-deep")
    version = publisher.publish(deep, metadata={"tags": {"learner": "test"}}).number
    publisher.promote(version, reason="test")

    run = build_online_run(settings, clip=(1.0, 5.0), blend_with="reco-deep",
                           register_target=False)
    learner = run.worker.learner
    assert isinstance(learner, LifelongLearner)
    deadline = time.monotonic() + 15
    while learner.deep_version != version:
        assert time.monotonic() < deadline, "the deep model never arrived"
        time.sleep(0.05)
    with EventProducer(settings.kafka_bootstrap, settings.topic) as producer:
        producer.send_all(events[1500:])
    run_worker(run, max_events=1500, timeout=90)
    assert run.worker.stats.learned == 1500
    scores = learner.component_scores()
    assert scores["deep"].n == 1500 and scores["online"].n == 1500
    assert learner.score().rmse <= 1.03 * min(s.rmse for s in scores.values())

    latest = registry.latest("reco")
    assert latest is not None
    with Subscriber(registry, "reco") as sub:
        assert sub.wait_for_version(latest.number, timeout=10)
        served = sub.current[1]
        # the serving object travels (with the dedup window of its checkpoint attached), not
        # the learner with its trainer and scorers
        model = served
        assert len(Checkpoint.of(model).dedup) == 8 * 1500
        assert isinstance(model, LifelongModel) and model.deep_version == version
        assert not hasattr(model, "finetuner") and not hasattr(model, "score")
        assert sub.predict("u1", "i2") == model.predict_one("u1", "i2")
    registry.close()
