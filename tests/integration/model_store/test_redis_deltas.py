"""Base + deltas through real Redis: a subscriber applies each delta to its standby and swaps;
a second client resumes the chain; retention keeps what the chain needs."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry

from consumers.checkpoint import Checkpoint
from consumers.publisher import RegistryPublisher
from consumers.retention import RetainLast
from learning.online import OnlineLearner
from model_store import Registry
from model_store.signing import Signer
from model_store.subscriber import Subscriber
from stream.schema import Event

pytestmark = pytest.mark.integration


def _learn(learner: OnlineLearner, rng: random.Random, n: int, start: int) -> int:
    for k in range(start, start + n):
        learner.learn_one(Event(f"e{k}", f"u{rng.randrange(2000)}", f"i{rng.randrange(400)}",
                                "rating", float(rng.randint(1, 5)), float(k)))
    return start + n


def test_subscriber_follows_deltas_over_redis_and_a_restart_resumes_the_chain(
        redis_url: str, prefix: str) -> None:
    signer = Signer(b"0123456789abcdef-it-delta-key")
    reg = Registry.from_url(redis_url, prefix=prefix, signer=signer)
    reader = Registry.from_url(redis_url, prefix=prefix, signer=signer)
    learner, rng = OnlineLearner("BiasedMF", seed=5), random.Random(2)
    pub = RetainLast(RegistryPublisher(reg, "reco", compact_share=10.0), reg, "reco", keep_last=2,
                     grace_seconds=0, every_seconds=0)
    n = _learn(learner, rng, 5000, 0)
    pub.publish(learner, {("events", 0): n})
    sub = Subscriber(reader, "reco", poll_interval=0.2, metrics_registry=CollectorRegistry())
    try:
        with sub:
            assert sub.wait_for_version(1, timeout=30)
            for _ in range(6):
                n = _learn(learner, rng, 200, n)
                number = pub.publish(learner, {("events", 0): n})
                assert sub.wait_for_version(number, timeout=30, exact=True)
            assert reg.get("reco", number).format == "river-delta"
            assert sub._replicas.applied >= 5
            probe = OnlineLearner.restore(learner.snapshot())
            assert all(sub.predict(f"u{u}", f"i{i}") == probe.predict_one(f"u{u}", f"i{i}")
                       for u in range(0, 2000, 97) for i in range(0, 400, 41))
        kept = [v.number for v in reg.versions("reco")]
        assert kept[0] == 1 and len(kept) == 7  # keep_last=2, but the chain needs its base
        version, obj = Registry.from_url(redis_url, prefix=prefix, signer=signer).load_object(
            "reco", "latest")
        resumed = Checkpoint.of(obj).learner
        assert version.number == number and resumed.events_seen == learner.events_seen
        assert resumed.predict_one("u3", "i4") == learner.predict_one("u3", "i4")
    finally:
        reg.close()
        reader.close()
