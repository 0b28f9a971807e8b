"""A subscriber following deltas: standby applied then swapped, whole loads otherwise."""

import random

from prometheus_client import CollectorRegistry

from consumers.publisher import RegistryPublisher
from learning.online import OnlineLearner
from model_store import Registry
from model_store.signing import Signer
from model_store.subscriber import Subscriber
from stream.schema import Event

KEY = b"0123456789abcdef-unit-replica-key"


def _learn(learner, rng, n, start):
    for k in range(start, start + n):
        learner.learn_one(Event(f"e{k}", f"u{rng.randrange(300)}", f"i{rng.randrange(80)}",
                                "rating", float(rng.randint(1, 5)), float(k)))
    return start + n


def _setup():
    reg = Registry.from_url("memory://", signer=Signer(KEY))
    learner, rng = OnlineLearner("BiasedMF", seed=2), random.Random(1)
    pub = RegistryPublisher(reg, "reco", compact_share=100.0)
    n = _learn(learner, rng, 2000, 0)
    pub.publish(learner, {("events", 0): n})
    return reg, learner, rng, pub, n


def _same(served, learner):
    pairs = [(f"u{u}", f"i{i}") for u in range(0, 300, 7) for i in range(0, 80, 9)]
    return all(served.predict_one(u, i) == learner.predict_one(u, i) for u, i in pairs)


def test_each_delta_is_applied_to_the_standby_and_swapped_in():
    reg, learner, rng, pub, n = _setup()
    sub = Subscriber(reg, "reco", poll_interval=0.05, metrics_registry=CollectorRegistry())
    with sub:
        assert sub.wait_for_version(1, timeout=10)
        served = [sub.current[1]]
        for _ in range(4):
            n = _learn(learner, rng, 100, n)
            number = pub.publish(learner, {("events", 0): n})
            assert sub.wait_for_version(number, timeout=10, exact=True)
            served.append(sub.current[1])
        assert sub._replicas.applied == 4 and sub._replicas.reloaded == 1
        # two replicas, alternating; neither is the learner
        assert served[1] is served[3] and served[2] is served[4] and served[1] is not served[2]
        assert all(s is not learner for s in served)
        probe = OnlineLearner.restore(learner.snapshot())  # predictions must not move it
        assert _same(sub.current[1], probe)
        assert sub.current[1].dirty_rows() == (set(), set())  # replicas track nothing


def test_a_burst_coalesced_to_its_last_delta_applies_the_deltas_between():
    reg, learner, rng, pub, n = _setup()
    sub = Subscriber(reg, "reco", poll_interval=30, metrics_registry=CollectorRegistry())
    sub._sync()
    sub._replicas.prepare("latest", reg.get("reco", 1))
    numbers = []
    for _ in range(3):
        n = _learn(learner, rng, 50, n)
        numbers.append(pub.publish(learner, {("events", 0): n}))
    sub._drain()  # coalesce: only the last move is loaded
    assert sub.current[0].number == numbers[-1]
    assert sub._replicas.applied == 1 and sub._replicas.reloaded == 1
    assert _same(sub.current[1], OnlineLearner.restore(learner.snapshot()))


def test_a_version_off_the_served_chain_loads_whole():
    reg, learner, rng, pub, n = _setup()
    sub = Subscriber(reg, "reco", alias="production", poll_interval=30,
                     metrics_registry=CollectorRegistry())
    n = _learn(learner, rng, 50, n)
    v2 = pub.publish(learner, {("events", 0): n})
    n = _learn(learner, rng, 50, n)
    v3 = pub.publish(learner, {("events", 0): n})
    reg.promote("reco", v3)
    sub._sync()
    assert sub.current[0].number == v3 and sub._replicas.reloaded == 1
    reg.promote("reco", v2)  # a rollback: v2 is not after v3
    sub._switch("production", v2)
    assert sub.current[0].number == v2 and sub._replicas.reloaded == 2
    _, whole = reg.load_object("reco", v2)
    assert _same(sub.current[1], whole)


def test_a_tampered_delta_is_refused_and_the_last_good_version_keeps_serving():
    reg, learner, rng, pub, n = _setup()
    sub = Subscriber(reg, "reco", poll_interval=30, metrics_registry=CollectorRegistry())
    sub._sync()
    sub._replicas.prepare("latest", reg.get("reco", 1))
    n = _learn(learner, rng, 50, n)
    number = pub.publish(learner, {("events", 0): n})
    chunks = reg.backend._chunks[("reco", number)]  # a direct write, past the registry
    chunks[-1] = chunks[-1][:-1] + bytes([chunks[-1][-1] ^ 1])
    sub._switch("latest", number)
    assert sub.current[0].number == 1 and _same(sub.current[1], _first(reg))
    reasons = {r: sub.metrics.failures.labels("reco", r)._value.get()
               for r in ("integrity", "loader")}
    assert sum(reasons.values()) == 1, reasons


def _first(reg):
    return reg.load_object("reco", 1)[1]


def test_a_rebase_claim_is_followed_only_when_it_names_the_served_chain():
    """A base naming the served version (``rebase_of`` + its sha256) is crossed by deltas;
    one whose claim does not match (another sha256) makes the next version load whole."""
    from model_store.delta import DeltaBlob, publish_delta, take_delta
    from model_store.replicas import Replicas

    for honest in (True, False):
        reg, learner, rng, pub, n = _setup()
        follow = Replicas(reg, "reco")
        first = reg.latest("reco")
        served = (first, follow.load("latest", None, first))
        follow.prepare("latest", first)
        n = _learn(learner, rng, 100, n)
        x = reg.get("reco", pub.publish(learner, {("events", 0): n}))
        served = (x, follow.load("latest", served, x))
        base = reg.publish_object("reco", learner, parent=x.number, metadata={
            "chain": 0, "rebase_of": x.number,
            "rebase_sha256": x.sha256 if honest else "0" * 64})
        learner.clear_dirty()
        n = _learn(learner, rng, 100, n)
        d = publish_delta(reg, "reco", DeltaBlob(parent_sha256=base.sha256, base=base.number,
                                                 learner=take_delta(learner)), parent=base)
        before = follow.reloaded
        obj = follow.load("latest", served, d)
        assert follow.reloaded == before + (0 if honest else 1)
        assert _same(obj, learner)
