"""Bases written by a forked child over real Redis while learning goes on; a subscriber (a
thread of the forking process) follows the chain across each new base without a whole load."""

from __future__ import annotations

import random
import time

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

KEY = b"0123456789abcdef-it-forked-key"


def _learn(learner: OnlineLearner, rng: random.Random, n: int, start: int) -> int:
    for k in range(start, start + n):
        learner.learn_one(Event(f"e{k}", f"u{rng.randrange(20000)}", f"i{rng.randrange(2000)}",
                                "rating", float(rng.randint(1, 5)), float(k)))
    return start + n


def test_a_forked_child_writes_bases_and_the_subscriber_never_reloads(
        redis_url: str, prefix: str) -> None:
    reg = Registry.from_url(redis_url, prefix=prefix, signer=Signer(KEY))
    reader = Registry.from_url(redis_url, prefix=prefix, signer=Signer(KEY))
    learner, rng = OnlineLearner("BiasedMF", seed=5), random.Random(4)
    pub = RegistryPublisher(reg, "reco", compact_after=3, compact_share=100.0,
                            base_writer="fork")
    assert pub._writer is not None  # Linux, Redis: the fork path
    # retention during the run: the child's base lives through its grace until a delta
    # continues it, then as the base of a kept chain
    kept = RetainLast(pub, reg, "reco", keep_last=2, grace_seconds=1.0, every_seconds=0)
    n = _learn(learner, rng, 20000, 0)
    kept.publish(learner, {("events", 0): n})
    sub = Subscriber(reader, "reco", poll_interval=0.2, metrics_registry=CollectorRegistry())
    try:
        with sub:
            assert sub.wait_for_version(1, timeout=30)
            end = time.monotonic() + 120
            while (pub.forked_bases < 3 or kept.deleted == 0) and time.monotonic() < end:
                n = _learn(learner, rng, 300, n)
                number = kept.publish(learner, {("events", 0): n})
                assert sub.wait_for_version(number, timeout=30, exact=True)
                time.sleep(0.05)
            assert pub.forked_bases >= 3 and pub.forked_failures == 0 and pub.bases == 1
            probe = OnlineLearner.restore(learner.snapshot())
            assert all(sub.predict(f"u{u}", f"i{i}") == probe.predict_one(f"u{u}", f"i{i}")
                       for u in range(0, 20000, 997) for i in range(0, 2000, 211))
            assert sub._replicas.reloaded == 1  # the first base; then deltas (and rebases)
        assert kept.deleted > 0
        rebased = [v for v in reg.versions("reco") if "rebase_of" in v.extra]
        assert len(rebased) >= 1 and all(v.format == "river-pickle" for v in rebased)
        version, obj = Registry.from_url(redis_url, prefix=prefix, signer=Signer(KEY)
                                         ).load_object("reco", "latest")
        chain_base = version.extra["base"]
        assert chain_base in {v.number for v in rebased}  # the resume loads the child's base
        resumed = Checkpoint.of(obj).learner
        assert resumed.events_seen == learner.events_seen
        assert resumed.predict_one("u3", "i4") == learner.predict_one("u3", "i4")
    finally:
        pub.close()
        reg.close()
        reader.close()


def test_a_failing_child_is_counted_and_the_chain_goes_on(redis_url: str, prefix: str) -> None:
    reg = Registry.from_url(redis_url, prefix=prefix, signer=Signer(KEY))
    learner, rng = OnlineLearner("BiasedMF", seed=5), random.Random(4)
    pub = RegistryPublisher(reg, "reco", compact_after=2, compact_share=100.0,
                            base_writer="fork", retry_seconds=0.0)
    n = _learn(learner, rng, 2000, 0)
    pub.publish(learner, {("events", 0): n})

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("store refused the base")

    reg.publish_object = broken  # type: ignore[method-assign]  # what the child calls
    try:
        for _ in range(4):
            n = _learn(learner, rng, 100, n)
            pub.publish(learner, {("events", 0): n})
            end = time.monotonic() + 30
            while pub._fork is not None and time.monotonic() < end:
                pub._poll_fork()
                time.sleep(0.02)
        assert pub.forked_failures >= 1 and pub.forked_bases == 0
        formats = [v.format for v in reg.versions("reco")]
        assert formats[0] == "river-pickle" and set(formats[1:]) == {"river-delta"}
        _, obj = reg.load_object("reco", "latest")
        assert Checkpoint.of(obj).learner.predict_one("u3", "i4") == learner.predict_one("u3",
                                                                                        "i4")
    finally:
        pub.close()
        reg.close()
