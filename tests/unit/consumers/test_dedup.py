from __future__ import annotations

import pickle

from hypothesis import given
from hypothesis import strategies as st

from consumers.checkpoint import Checkpoint
from consumers.dedup import RecentIds
from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource

ids = st.lists(st.text(min_size=1, max_size=4, alphabet="abcdefgh"), max_size=200)


@given(ids, st.integers(0, 200), st.integers(1, 50))
def test_snapshot_restore_continue_equals_an_uninterrupted_run(seq, cut, capacity):
    cut = min(cut, len(seq))
    whole = RecentIds(capacity)
    expected = [whole.check_and_add(x) for x in seq]
    first = RecentIds(capacity)
    got = [first.check_and_add(x) for x in seq[:cut]]
    second = RecentIds.restore(first.snapshot(), capacity)
    got += [second.check_and_add(x) for x in seq[cut:]]
    assert got == expected
    assert second.snapshot() == whole.snapshot()


@given(ids, st.integers(1, 50))
def test_the_window_holds_exactly_the_last_capacity_distinct_ids(seq, capacity):
    seen = RecentIds(capacity)
    for x in seq:
        seen.check_and_add(x)
    assert len(seen) == min(capacity, len(set(seq))) and len(seen.snapshot()) == 8 * len(seen)


class Publisher:
    def __init__(self):
        self.blobs = []

    def publish(self, learner, positions):
        self.blobs.append(pickle.dumps(learner))  # what the store keeps
        return len(self.blobs)


def _events(ids):
    return [encode(Event(f"e{k}", f"u{k % 13}", f"i{k % 17}", "rating", 3.0, 1_000.0 + k))
            for k in ids]


def test_duplicates_across_a_restart_are_dropped():
    pub = Publisher()
    LearnerWorker(ListSource(_events(range(3000))), OnlineLearner(), ListDeadLetters(),
                  publisher=pub).run()
    served = pickle.loads(pub.blobs[-1])
    assert isinstance(served, OnlineLearner)  # subscribers get the learner itself
    restored = Checkpoint.of(served)
    assert restored.events_seen == 3000 and len(restored.dedup) == 8 * 3000
    worker = LearnerWorker(ListSource(_events(range(2900, 3000))), restored.learner,
                           ListDeadLetters(), publisher=pub)
    worker.restore(restored)
    stats = worker.run()
    assert (stats.duplicates, stats.learned) == (100, 0)
    assert pickle.loads(pub.blobs[-1]).events_seen == 3000
