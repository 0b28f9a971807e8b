"""The worker hands a batch's learned events to the detectors at once: same as one by one."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from monitoring.drift import ErrorDrift
from monitoring.freshness import LearnerFreshness
from monitoring.input_drift import InputDriftWatch
from stream.schema import Event, encode
from stream.source import BatchSource, ListDeadLetters, ListSource, Record
from stream.synthetic import SyntheticStream


def _values() -> list[bytes]:
    """3,000 events whose error jumps twice (ADWIN alarms), a dead letter and a duplicate."""
    base = list(SyntheticStream(n_events=3000, seed=4))
    raw = [encode(msgspec.structs.replace(
        e, value=e.value if k < 1000 else (1.0 if k % 2 else 5.0) if k < 2000 else 3.0))
        for k, e in enumerate(base)]
    return [*raw[:200], b"not json", raw[5], *raw[200:]]


def _run(values: list[bytes], batch_size: int, fail_at: set[str] = frozenset()):
    learner = OnlineLearner("BiasedMF")
    if fail_at:
        learn_one = learner.learn_one

        def flaky(event: Event) -> float:
            if event.event_id in fail_at:
                raise RuntimeError("boom")
            return learn_one(event)

        learner.learn_one = flaky  # type: ignore[method-assign]
    alarms: list[int] = []
    worker = LearnerWorker(
        ListSource(values, batch_size=batch_size), learner, ListDeadLetters(),
        drift=ErrorDrift(min_events=100, cooldown=200), on_drift=alarms.append,
        input_drift=InputDriftWatch.for_learner(learner, "m", window=250),
        freshness=LearnerFreshness.for_learner(learner))
    stats = worker.run()
    return worker, stats, alarms


@settings(max_examples=6, deadline=None)
@given(st.sampled_from([1, 7, 100, 500, 5000]),
       st.sets(st.integers(0, 2999), max_size=4))
def test_batches_give_the_alarms_and_windows_of_one_event_at_a_time(size, failing):
    values = _values()
    fail_at = {f"syn-4-{k}" for k in failing}
    one, s1, a1 = _run(values, 1, fail_at)
    many, s2, a2 = _run(values, size, fail_at)
    assert (s1.learned, s1.invalid, s1.duplicates) == (s2.learned, s2.invalid, s2.duplicates)
    assert s2.learned == 3000 - len(failing) and s2.invalid == 1 + len(failing)
    assert a1 == a2 == s2.drift_alarms == s1.drift_alarms and len(a2) >= 1
    assert many.drift.n == s2.learned == many.input_drift.drift.n
    assert str(one.input_drift.drift.statistics()) == str(many.input_drift.drift.statistics())
    assert one.input_drift.drift._values == many.input_drift.drift._values
    assert many.positions == one.positions == {("memory", 0): len(values)}
    assert one.freshness.state.newest == many.freshness.state.newest
    assert many._since_publish == s2.learned


def test_a_failing_drift_callback_stops_nothing():
    values = _values()
    learner = OnlineLearner("BiasedMF")

    def broken(at: int) -> None:
        raise RuntimeError("alarm store down")

    worker = LearnerWorker(ListSource(values, batch_size=500), learner, ListDeadLetters(),
                           drift=ErrorDrift(min_events=100, cooldown=200), on_drift=broken)
    stats = worker.run()
    assert stats.learned == 3000 and stats.drift_alarms and worker.positions == {
        ("memory", 0): len(values)}


def test_an_erasure_mid_batch_reaches_the_window_before_the_user_is_forgotten():
    learner = OnlineLearner("BiasedMF")
    watch = InputDriftWatch.for_learner(learner, "m", window=10_000)
    events = [encode(Event(f"e{k}", "alice" if k % 2 else "bob", "i1", "rating", 4.0,
                           1_700_000_000.0 + k)) for k in range(20)]
    batch = [Record(v, "events", 0, k) for k, v in enumerate(events)]
    batch.insert(10, Record(b'{"erase_user":"alice"}', "erasures", 0, 0))
    worker = LearnerWorker(BatchSource([batch]), learner, ListDeadLetters(),
                           input_drift=watch, erasure_topic="erasures")
    worker.run()
    users = watch.drift._users
    assert "alice" not in users[:10] and users[10:].count("alice") == 5
