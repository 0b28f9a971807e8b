"""A worker without a publisher keeps no dirty rows; attaching one later stays correct."""

import random

from consumers.checkpoint import Checkpoint
from consumers.publisher import RegistryPublisher
from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from model_store import Registry
from model_store.signing import Signer
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource

KEY = b"0123456789abcdef-unit-untracked"


def _values(n, start=0, seed=5):
    rng = random.Random(seed)
    return [encode(Event(f"e{k}", f"u{k}", f"i{rng.randrange(n)}", "rating",
                         float(rng.randint(1, 5)), 1_700_000_000.0 + k))
            for k in range(start, start + n)]


def _tables(learner):
    river = learner.model._model
    return {name: dict(getattr(river, name)) for name in ("u_biases", "i_biases")}


def test_a_worker_without_a_publisher_keeps_no_dirty_rows():
    learner = OnlineLearner("BiasedMF", seed=3)
    worker = LearnerWorker(ListSource(_values(2000), batch_size=100), learner, ListDeadLetters())
    stats = worker.run()
    assert stats.learned == 2000 and len(learner.model._model.u_biases) == 2000  # new ids
    assert learner._dirty_users is None and learner._dirty_items is None
    assert learner.dirty_rows() == (set(), set())


def test_a_worker_with_a_publisher_still_tracks_until_it_publishes():
    learner = OnlineLearner("BiasedMF", seed=3)
    pub = RegistryPublisher(Registry.from_url("memory://", signer=Signer(KEY)), "reco")
    worker = LearnerWorker(ListSource(_values(40), batch_size=10), learner, ListDeadLetters(),
                           publisher=pub, publish_every_events=10**6,
                           publish_every_seconds=1e9)
    worker.process(worker.source.poll(1.0))
    assert len(learner.dirty_rows()[0]) == 10


def test_rows_learned_while_untracked_make_the_next_version_whole():
    reg = Registry.from_url("memory://", signer=Signer(KEY))
    learner = OnlineLearner("BiasedMF", seed=3)
    pub = RegistryPublisher(reg, "reco", compact_share=100.0)
    worker = LearnerWorker(ListSource(_values(300), batch_size=50), learner, ListDeadLetters(),
                           publisher=pub, publish_every_events=50, publish_every_seconds=1e9)
    for _ in range(2):  # a base, then a delta
        worker.process(worker.source.poll(1.0))
        worker.publish()
    worker.publisher = None  # detached: the next 100 events are not tracked
    for _ in range(2):
        worker.process(worker.source.poll(1.0))
    assert learner._dirty_users is None
    worker.publisher = pub  # a delta now would miss those rows
    worker.process(worker.source.poll(1.0))
    worker.publish()
    formats = [v.format for v in reg.versions("reco")]
    assert formats == ["river-pickle", "river-delta", "river-pickle"]
    _, obj = reg.load_object("reco", "latest")
    assert _tables(Checkpoint.of(obj).learner) == _tables(learner)


def test_track_rows_asks_for_a_whole_version_only_when_rows_went_unrecorded():
    learner = OnlineLearner("BiasedMF")
    learner.track_rows(False)
    learner.track_rows(True)  # nothing learned in between: deltas stay possible
    assert not learner._needs_base
    learner.learn_one(Event("e1", "u1", "i1", "rating", 4.0, 1.0))
    learner.track_rows(False)  # u1 is dirty and would be forgotten
    learner.track_rows(True)
    assert learner._needs_base and learner.dirty_rows() == (set(), set())
    learner.clear_dirty()
    learner.track_rows(False)
    learner.learn_one(Event("e2", "u2", "i2", "rating", 4.0, 2.0))
    learner.track_rows(True)
    assert learner._needs_base


def test_a_prediction_while_untracked_also_makes_the_next_version_whole():
    learner = OnlineLearner("BiasedMF")
    learner.track_rows(False)
    learner.predict_one("u9", "i9")  # River inserts u9's and i9's rows, events_seen stays
    learner.track_rows(True)
    assert learner._needs_base
