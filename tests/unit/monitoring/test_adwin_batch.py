"""ADWIN fed a batch at a time (River's window read directly) equals one update at a time."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.detectors.error import ADWINDetector


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(1, 700), max_size=12),
       shifts=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=4))
def test_alarms_in_equals_update_one_at_a_time(seed: int, cuts: list[int],
                                               shifts: list[float]) -> None:
    rng = random.Random(seed)
    xs = [abs(rng.gauss(0.5 + shifts[i * len(shifts) // 4000], 0.3)) for i in range(4000)]
    one, many = (ADWINDetector(min_events=50, cooldown=200) for _ in range(2))
    expected = [i for i, x in enumerate(xs) if one.update(x)]
    got, start = [], 0
    for size in [*cuts, len(xs)]:
        part = xs[start:start + size]
        got += [start + i for i in many.alarms_in(part)]
        start += len(part)
        if start >= len(xs):
            break
    assert got == expected
    assert many.state() == one.state() and many.alarms == one.alarms and many.n == one.n
    assert many.drift_detected == one.drift_detected
    assert many._detector.width == one._detector.width  # the same window after the resets


def test_a_drift_resets_the_window_as_river_does() -> None:
    xs = [0.1] * 1000 + [3.0] * 1000
    one, many = ADWINDetector(min_events=10), ADWINDetector(min_events=10)
    expected = [i for i, x in enumerate(xs) if one.update(x)]
    assert many.alarms_in(xs) == expected and expected
    assert many._detector.n_detections == one._detector.n_detections
