"""Lifelong blend versions as deltas: base + deltas predicts bit for bit as the learner."""

import pickle
import random

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from consumers.checkpoint import Checkpoint, publish_non_finite
from consumers.publisher import RegistryPublisher
from learning.deltas import apply_delta, decode, delta_capable, encode, take_delta
from learning.finetune import FineTuner
from learning.lifelong import LifelongLearner
from learning.serving import LifelongModel
from learning.torch_models import DeepRecommender
from model_store import Registry
from model_store.signing import Signer
from model_store.subscriber import Subscriber
from stream.schema import Event

KEY = b"0123456789abcdef-unit-blend-delta-key"
USERS, ITEMS = 60, 40


def _events(n, start, seed):
    rng = random.Random(seed)
    return [Event(f"e{k}", f"u{rng.randrange(USERS)}", f"i{rng.randrange(ITEMS)}", "rating",
                  float(rng.randint(1, 5)), float(k)) for k in range(start, start + n)]


def _deep(seed):
    deep = DeepRecommender(n_factors=4, clip=(1.0, 5.0), seed=seed)
    # the view knows most ids but not all (unknown users and items take the other paths)
    evs = [e for e in _events(1500, 0, seed) if e.user_id != "u7" and e.item_id != "i3"]
    FineTuner(deep, device="cpu", batch_size=256, epochs_per_round=1).train_full(
        [e.user_id for e in evs], [e.item_id for e in evs],
        np.asarray([e.value for e in evs], dtype=np.float32),
        np.asarray([e.ts for e in evs], dtype=np.float64))
    return deep


@pytest.fixture(scope="module")
def deeps():
    return _deep(0), _deep(1)


def _learner():
    return LifelongLearner(clip=(1.0, 5.0), refit_every=700, blend_refit=300)


def _pairs():
    return [(f"u{u}", f"i{i}") for u in range(USERS + 3) for i in range(0, ITEMS + 2, 3)]


def _assert_same(served, learner):
    model = learner.model
    assert [served.predict_one(u, i) for u, i in _pairs()] == [
        model.predict_one(u, i) for u, i in _pairs()]
    if model._serving is not None:
        mine, theirs = model.fold._vecs, served.fold._vecs
        assert list(mine) == list(theirs)  # the recency order too (eviction goes by it)
        assert all(np.array_equal(mine[u], theirs[u]) for u in mine)
        assert served.deep_version == model.deep_version


def test_base_plus_deltas_predicts_and_continues_as_the_learner(deeps):
    learner = _learner()
    learner.set_deep(deeps[0], version=1)
    replica = pickle.loads(pickle.dumps(learner.model))  # the base
    learner.clear_dirty()
    assert delta_capable(learner) and delta_capable(replica)
    sizes, start = [], 0
    for chunk in range(12):
        if chunk == 6:  # a new deep version arrives: the next delta carries its view once
            learner.set_deep(deeps[1], version=2)
        if chunk in (3, 9):  # few users kept: eviction by recency must match too
            learner.model.fold.max_users = replica.fold.max_users = 25
        for e in _events(250, start, seed=chunk + 10):
            learner.learn_one(e)
        start += 250
        assert publish_non_finite(learner) is None  # checks the changed rows, keeps them
        data = encode(take_delta(learner))
        sizes.append(len(data))
        delta = decode(data)
        assert (delta.blend.view is not None) == (chunk == 6)
        apply_delta(replica, delta)
        learner.clear_dirty()
        _assert_same(replica, learner)
    assert learner.model.biases.refits >= 3  # deltas after bias refits carried every row
    assert max(sizes[7:]) < sizes[6]  # the view went once
    # driven on, the replica learns exactly as the learner's model
    for e in _events(400, start, seed=99):
        a = learner.model.step(e.user_id, e.item_id, e.value)
        b = replica.step(e.user_id, e.item_id, e.value)
        assert a == b


def test_a_non_finite_changed_row_refuses_the_version(deeps):
    learner = _learner()
    learner.set_deep(deeps[0], version=1)
    for e in _events(300, 0, seed=3):
        learner.learn_one(e)
    assert publish_non_finite(learner) is None
    learner.clear_dirty()
    learner.learn_one(Event("x", "u1", "i1", "rating", 4.0, 1e6))
    learner.model._user_squares[learner.model.biases._users["u1"]] = float("nan")
    assert publish_non_finite(learner) == "parameter model.biases is not finite"


def test_an_erasure_makes_the_next_version_whole(deeps):
    learner = _learner()
    learner.set_deep(deeps[0], version=1)
    for e in _events(200, 0, seed=4):
        learner.learn_one(e)
    learner.clear_dirty()
    assert not learner._needs_base
    learner.forget_user("u5")
    assert learner._needs_base
    learner.clear_dirty()
    assert not learner._needs_base


def _publish(pub, learner, n):
    return pub.publish(Checkpoint(learner, b"", {}), {("events", 0): n})


def test_published_as_deltas_loads_and_resumes_across_deep_versions(deeps):
    reg = Registry.from_url("memory://", signer=Signer(KEY))
    learner = _learner()
    learner.set_deep(deeps[0], version=1)
    pub = RegistryPublisher(reg, "blend", compact_share=100.0)
    sub = Subscriber(reg, "blend", poll_interval=0.05, metrics_registry=CollectorRegistry())
    start = 0
    with sub:
        for chunk in range(6):
            if chunk == 3:
                learner.set_deep(deeps[1], version=2)
            for e in _events(300, start, seed=chunk):
                learner.learn_one(e)
            start += 300
            number = _publish(pub, learner, start)
            assert sub.wait_for_version(number, timeout=10, exact=True)
            _assert_same(sub.current[1], learner)
        assert sub._replicas.applied == 5 and sub._replicas.reloaded == 1
        assert pub.bases == 1 and pub.deltas == 5
        assert reg.get("blend", "latest").format == "river-delta"
        # a restart: load base + deltas, resume, publish deltas over the loaded version
        version, obj = reg.load_object("blend", "latest")
        restored = Checkpoint.of(obj)
        assert isinstance(restored.learner, LifelongModel)
        _assert_same(restored.learner, learner)
        resumed = LifelongLearner.resume(restored.learner)
        pub2 = RegistryPublisher(reg, "blend", parent=version.number, compact_share=100.0)
        pub2.continue_from(version, restored)
        for chunk in range(2):
            for e in _events(300, start, seed=50 + chunk):
                resumed.learn_one(e)
            start += 300
            number = _publish(pub2, resumed, start)
            assert reg.get("blend", number).format == "river-delta"
            assert sub.wait_for_version(number, timeout=10, exact=True)
            _assert_same(sub.current[1], resumed)
        assert sub._replicas.reloaded == 1


def test_a_child_written_base_continues_the_blend_chain(deeps):
    """Worker, forked bases (a writer that reports later), a new deep version mid-way."""
    from consumers.worker import LearnerWorker
    from model_store.replicas import Replicas
    from stream.schema import encode as encode_event
    from stream.source import ListDeadLetters, ListSource
    from tests.unit.consumers.test_forked_bases import LaterWriter

    reg = Registry.from_url("memory://", signer=Signer(KEY))
    writer = LaterWriter(delay=2)
    pub = RegistryPublisher(reg, "blend", compact_after=3, compact_share=100.0,
                            base_writer="fork", writer=writer)
    learner = _learner()
    learner.set_deep(deeps[0], version=1)
    values = [encode_event(e) for e in _events(1500, 0, seed=8)]
    worker = LearnerWorker(ListSource(values, batch_size=25), learner, ListDeadLetters(),
                           publisher=pub, publish_every_events=60, publish_every_seconds=1e9)
    follow, served, published = Replicas(reg, "blend"), None, 0
    while batch := worker.source.poll(1.0):
        worker.process(batch)
        if worker._publish_due() and worker.publish() is not None:
            published += 1
            for version in reg.versions("blend"):
                if served is None or version.number > served[0].number:
                    served = (version, follow.load("latest", served, version))
                    follow.prepare("latest", version)
            _assert_same(served[1], learner)
            if published == 9:  # the next version (a delta) carries the new view
                learner.set_deep(deeps[1], version=2)
    assert pub.forked_bases >= 2 and pub.bases == 1 and follow.reloaded == 1
    _, obj = reg.load_object("blend", "latest")
    _assert_same(Checkpoint.of(obj).learner, learner)


def test_tracking_switched_off_and_on_never_loses_a_row(deeps):
    learner = _learner()
    learner.set_deep(deeps[0], version=1)
    for e in _events(100, 0, seed=5):
        learner.learn_one(e)
    users, _ = learner.dirty_rows()
    learner.track_rows(True)  # already on (a worker given a publisher): the rows stay
    assert learner.dirty_rows()[0] == users and not learner._needs_base
    learner.clear_dirty()
    learner.track_rows(False)  # no publisher: nothing recorded ...
    learner.track_rows(True)  # ... and nothing learned meanwhile: deltas go on
    assert not learner._needs_base
    learner.track_rows(False)
    for e in _events(50, 100, seed=6):
        learner.learn_one(e)
    assert learner.dirty_rows() == (set(), set())
    learner.track_rows(True)  # events learned untracked: no delta could name their rows
    assert learner._needs_base
    learner.learn_one(_events(1, 150, seed=7)[0])
    learner.clear_dirty()
    assert not learner._needs_base
    assert "_untracked_at" not in pickle.loads(pickle.dumps(learner.model)).__dict__
