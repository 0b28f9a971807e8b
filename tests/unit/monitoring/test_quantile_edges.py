"""PSI's bucket edges, worked out from a sorted window, equal numpy's quantiles bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.detectors.stats import psi, psi_numeric, quantile_edges

_values = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                             st.sampled_from([0.0, 1.0, 1.0, 3.5, -2.0])),
                   min_size=0, max_size=300)


def _reference_edges(xs: np.ndarray, bins: int) -> np.ndarray:
    return np.unique(np.quantile(xs, np.linspace(0, 1, bins + 1)[1:-1]))


def _reference_psi(ref: np.ndarray, cur: np.ndarray, bins: int) -> float:
    edges = _reference_edges(ref, bins)
    k = len(edges) + 1
    return psi(np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k),
               np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k))


@settings(max_examples=400, deadline=None)
@given(_values, st.integers(1, 12))
def test_edges_equal_numpy_quantile(xs: list[float], bins: int) -> None:
    arr = np.asarray(xs, dtype=float)
    if len(arr) == 0:
        return  # numpy refuses an empty sample; so does quantile_edges (never called so)
    got, want = quantile_edges(arr, bins), _reference_edges(arr, bins)
    np.testing.assert_array_equal(got, want)  # NaN equal to NaN, else bit-equal
    assert got.tobytes() == want.tobytes() or np.isnan(want).any()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e9, 1e9), min_size=2, max_size=400),
       st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=400), st.integers(2, 12))
def test_psi_numeric_equals_quantile_path(ref: list[float], cur: list[float],
                                          bins: int) -> None:
    r, c = np.asarray(ref), np.asarray(cur)
    assert psi_numeric(r, c, bins) == _reference_psi(r, c, bins)


def test_window_sizes_share_a_plan() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 999, 1000, 1001):
        xs = rng.normal(size=n)
        assert quantile_edges(xs).tobytes() == _reference_edges(xs, 10).tobytes()
