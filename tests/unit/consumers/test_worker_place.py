"""The positions a batch moves (``LearnerWorker._place``, in C) equal a per-record fold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from stream.source import ListDeadLetters, ListSource, Record

_records = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 2),
                              st.integers(0, 10_000)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(_records, _records)
def test_place_equals_per_record_fold(first: list, second: list) -> None:
    worker = LearnerWorker(ListSource([]), OnlineLearner(), ListDeadLetters())
    expected: dict[tuple[str, int], int] = {}
    for batch in (first, second):
        records = [Record(b"x", t, p, o) for t, p, o in batch]
        worker._place(records)
        for r in records:  # the last record of a partition wins, even at a lower offset
            expected[(r.topic, r.partition)] = r.offset + 1
        assert worker.positions == expected
