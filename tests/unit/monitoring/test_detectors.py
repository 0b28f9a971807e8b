"""Drift detectors on synthetic streams with known change points, at fixed seeds.

Stated bounds: on an abrupt change every detector alarms within its delay bound (error
detectors: 300 updates for a rise of the mean error from 0.5 to 1.0; window detectors: two
windows) with no alarm before the change, exactly one alarm per change (the cooldown), and
none on a stationary stream of the same length. Snapshot -> restore -> continue equals an
uninterrupted run for every registered detector.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.detectors import (
    DETECTORS,
    ERROR_DETECTORS,
    DriftDetector,
    PSIDetector,
    make,
    restore,
)
from monitoring.detectors.stats import chi_squared, ks_statistic, psi, psi_numeric
from monitoring.drift import ErrorDrift

SEEDS = range(5)
CHANGE = 4000
LENGTH = 8000
WINDOW = 500
KINDS = ["rating", "click", "view", "purchase"]


def error_stream(seed: int, change: int | None = CHANGE, n: int = LENGTH) -> list[float]:
    rng = random.Random(seed)
    return [abs(rng.gauss(1.0 if change is not None and i >= change else 0.5, 0.3))
            for i in range(n)]


def number_stream(seed: int, change: int | None = CHANGE, n: int = LENGTH) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(0.7 if change is not None and i >= change else 0.0, 1.0)
            for i in range(n)]


def category_stream(seed: int, change: int | None = CHANGE, n: int = LENGTH) -> list[str]:
    rng = random.Random(seed)
    before, after = [5, 3, 1.5, 0.5], [3, 3, 3, 1]
    return [rng.choices(KINDS, after if change is not None and i >= change else before)[0]
            for i in range(n)]


CASES = {  # name -> (detector factory, stream, delay bound in updates)
    "adwin": (lambda: make("adwin"), error_stream, 300),
    "page_hinkley": (lambda: make("page_hinkley"), error_stream, 300),
    "kswin": (lambda: make("kswin", seed=1), error_stream, 300),
    "psi": (lambda: make("psi", window=WINDOW), number_stream, 2 * WINDOW),
    "psi_categories": (lambda: make("psi", window=WINDOW, categorical=True, threshold=0.1),
                       category_stream, 2 * WINDOW),
    "ks": (lambda: make("ks", window=WINDOW), number_stream, 2 * WINDOW),
    "chi2": (lambda: make("chi2", window=WINDOW), category_stream, 2 * WINDOW),
}


def alarms(detector, stream) -> list[int]:
    return [i for i, x in enumerate(stream) if detector.update(x)]


def test_every_registered_detector_has_a_case():
    assert set(DETECTORS) <= {name.split("_categories")[0] for name in CASES}
    assert set(ERROR_DETECTORS) <= set(DETECTORS)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", SEEDS)
def test_one_alarm_per_change_within_the_delay_bound(name, seed):
    factory, stream, bound = CASES[name]
    found = alarms(factory(), stream(seed))
    assert len(found) == 1, f"{name} seed {seed}: alarms at {found}, expected one after {CHANGE}"
    assert CHANGE <= found[0] < CHANGE + bound, f"{name} seed {seed}: delay {found[0] - CHANGE}"


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", SEEDS)
def test_no_alarm_on_a_stationary_stream(name, seed):
    factory, stream, _ = CASES[name]
    assert alarms(factory(), stream(seed, change=None)) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_snapshot_restore_continue_equals_uninterrupted(name):
    factory, stream, _ = CASES[name]
    data = stream(7)
    whole = factory()
    first = alarms(whole, data)
    part = factory()
    head = alarms(part, data[:CHANGE + 123])
    resumed = restore(part.snapshot())
    tail = [i + CHANGE + 123 for i in alarms(resumed, data[CHANGE + 123:])]
    assert head + tail == first
    assert resumed.state() == whole.state() or math.isnan(whole.state()["statistic"])


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_protocol_and_state(name):
    det = make(name)
    assert isinstance(det, DriftDetector)
    det.update("rating" if getattr(det, "categorical", False) else 0.5)
    state = det.state()
    assert {"n", "alarms", "statistic", "threshold"} <= set(state)
    assert state["n"] == 1.0 and state["alarms"] == 0.0


def test_unknown_detector_is_named():
    with pytest.raises(ValueError, match="'nope'"):
        make("nope")


def test_cooldown_and_min_events_gate_alarms():
    det = PSIDetector(window=100, cooldown=0, min_events=250)
    steps = [float(i // 100 % 2) * 10 + (i % 7) for i in range(600)]  # a change every window
    assert alarms(det, steps) == [299, 399, 499, 599]  # none before min_events
    det = PSIDetector(window=100, cooldown=250)
    assert alarms(det, steps) == [199, 499]


@pytest.mark.parametrize("method", ERROR_DETECTORS)
def test_error_drift_keeps_working_for_the_worker(method):
    drift = ErrorDrift(method)
    found = [i for i, e in enumerate(error_stream(3)) if drift.update(e)]
    assert found == drift.alarms and len(found) == 1 and drift.n == LENGTH
    # the error falling back is a change too, but not an alarm
    recovery = ErrorDrift(method)
    assert [i for i, e in enumerate(reversed(error_stream(3))) if recovery.update(e)] == []


def test_error_drift_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="'psi'"):
        ErrorDrift("psi")


# --- invariants of the statistics ----------------------------------------------------------

counts = st.lists(st.integers(0, 1000), min_size=2, max_size=20)
samples = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(counts, st.data())
def test_psi_is_non_negative_and_zero_on_identical_counts(expected, data):
    actual = data.draw(st.lists(st.integers(0, 1000), min_size=len(expected),
                                max_size=len(expected)))
    assert psi(expected, actual) >= 0.0
    assert psi(expected, expected) == pytest.approx(0.0, abs=1e-12)
    scaled = [3 * c for c in expected]  # the same distribution, more events
    assert psi(expected, scaled) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(samples, samples)
def test_numeric_statistics_are_bounded(a, b):
    assert psi_numeric(a, b) >= 0.0
    assert psi_numeric(a, a) == pytest.approx(0.0, abs=1e-12)
    assert 0.0 <= ks_statistic(a, b) <= 1.0
    assert ks_statistic(a, a) == 0.0


@settings(max_examples=100, deadline=None)
@given(counts, st.data())
def test_chi_squared_is_non_negative(reference, data):
    current = data.draw(st.lists(st.integers(0, 1000), min_size=len(reference),
                                 max_size=len(reference)))
    stat, dof = chi_squared(reference, current)
    assert stat >= 0.0 and 0 <= dof < len(reference)


def test_psi_of_same_distribution_is_small_and_of_a_shift_large():
    rng = np.random.default_rng(0)
    same = [psi_numeric(rng.normal(0, 1, 1000), rng.normal(0, 1, 1000)) for _ in range(20)]
    assert max(same) < 0.05
    assert psi_numeric(rng.normal(0, 1, 1000), rng.normal(1, 1, 1000)) > 0.25


@pytest.mark.parametrize("name", sorted(CASES))
def test_update_many_equals_one_update_at_a_time(name):
    factory, stream, _ = CASES[name]
    data = stream(11)[:3000]
    one, bulk = factory(), factory()
    singles = alarms(one, data)
    found, start = [], 0
    for size in (1, 499, 500, 1, 999, 1000):  # chunks that do and do not align with windows
        chunk = data[start:start + size]
        if bulk.update_many(chunk):
            found.append(start)
        start += size
    assert one.state() == bulk.state() or math.isnan(one.state()["statistic"])
    assert len(found) <= len(singles) and one.alarms == bulk.alarms
