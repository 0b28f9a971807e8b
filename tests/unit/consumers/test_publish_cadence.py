"""The cadence counts from a publish's start; the worker records where the time goes."""

import itertools

from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource


def _stream(n):
    return [encode(Event(f"e{k}", f"u{k % 7}", "i", "rating", 3.0, 1_700_000_000.0 + k))
            for k in range(n)]


def _run(took, share, batches=60):
    """Batches of 0.125 s of learning on a fake clock (exact in binary); a publish ``took``."""
    now = [0.0]

    class Slow:
        calls = 0

        def publish(self, learner, positions):
            now[0] += took
            Slow.calls += 1
            return Slow.calls

    worker = LearnerWorker(ListSource(_stream(batches * 5), batch_size=5), OnlineLearner(),
                           ListDeadLetters(), publisher=Slow(), publish_every_events=10**6,
                           publish_every_seconds=0.5, clock=lambda: now[0],
                           publish_max_share=share, publish_burst_seconds=1.0)
    while batch := worker.source.poll(0):
        worker.process(batch)
        now[0] += 0.125
        if worker._publish_due():
            worker.publish()
    return worker.stats, now[0]


def test_versions_start_every_cadence_while_a_publish_is_shorter():
    stats, _ = _run(took=0.25, share=1.0)
    starts = [s for s, _, _ in stats.publish_times]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # counted from the end it was 0.25 + 0.5; from the start: the cadence
    assert len(gaps) > 5 and set(gaps[1:]) == {0.5} and gaps[0] <= 0.625
    assert all(t == 0.25 and h == 0.0 for _, t, h in stats.publish_times)
    assert stats.publish_steps["publisher"] > 0 and set(stats.publish_steps) == {
        "check", "checkpoint", "publisher", "commit"}


def test_the_floor_holds_a_due_version_and_says_for_how_long():
    stats, elapsed = _run(took=0.25, share=0.1, batches=200)
    took = sum(t for _, t, _ in stats.publish_times)
    held = [h for _, _, h in stats.publish_times]
    assert took <= 0.1 * elapsed + 1.0 + 0.25  # the share, plus the burst and one publish
    assert max(held) > 1.5  # a 0.25 s publish at 10%: 2.5 s between versions once spent
    assert held[0] == 0.0  # the burst: the first versions are on time


def test_a_quiet_topic_does_not_hold_a_pending_version_for_a_whole_poll_timeout():
    """The last events before a pause are published at the cadence, not after the poll."""
    now = [0.0]
    waits: list[float] = []

    class Pausing(ListSource):  # one batch, then a topic that stays quiet
        def poll(self, timeout: float = 1.0):
            batch = super().poll(timeout)
            if not batch:
                waits.append(timeout)
                now[0] += timeout  # a real consumer waits that long for records
            return batch

    published: list[float] = []

    class At:
        def publish(self, learner, positions):
            published.append(now[0])
            return len(published)

    worker = LearnerWorker(Pausing(_stream(5), batch_size=5), OnlineLearner(),
                           ListDeadLetters(), publisher=At(), publish_every_events=10**6,
                           publish_every_seconds=0.5, clock=lambda: now[0])
    worker.run(idle_timeout=3.0, poll_timeout=1.0)
    # the batch came at t = 0: its version is due at 0.5, and the poll waited only that long
    assert published[0] == 0.5 and waits[0] == 0.5
    assert all(w == 1.0 for w in waits[1:])  # nothing pending: the whole poll timeout
    assert len(published) == 1  # nothing new after it: no empty versions
