"""Two-sample statistics for drift against a reference window, in numpy.

PSI (population stability index) over bucket counts, the Kolmogorov-Smirnov statistic of
two samples of numbers, and Pearson's chi-squared test of homogeneity of two count vectors.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(0, 1, 2000), rng.normal(1, 1, 2000)
>>> round(psi_numeric(a, a), 6), psi_numeric(a, b) > 0.25
(0.0, True)
>>> ks_statistic(a, b) > ks_critical(2000, 2000, 0.001)
True
>>> stat, dof = chi_squared([500, 500], [300, 700])
>>> dof, stat > chi2_critical(dof, 0.001)
(1, True)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import chi2 as _chi2

__all__ = ["chi2_critical", "chi_squared", "ks_critical", "ks_statistic", "psi",
           "psi_numeric", "quantile_edges"]

EPS = 1e-4  # floor of a bucket's share, so an empty bucket does not make PSI infinite


def psi(expected: ArrayLike, actual: ArrayLike, eps: float = EPS) -> float:
    """PSI of ``actual`` bucket counts against ``expected`` ones (same buckets); >= 0.

    Each term ``(a - e) * ln(a / e)`` is non-negative, shares are floored at ``eps``.
    Rules of thumb: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a shift.

    >>> psi([10, 20, 70], [10, 20, 70]), round(psi([50, 50], [90, 10]), 3)
    (0.0, 0.879)
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"bucket counts of different shapes: {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0
    pe = np.maximum(e / e.sum(), eps)
    pa = np.maximum(a / a.sum(), eps)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def quantile_edges(reference: ArrayLike, bins: int = 10) -> np.ndarray:
    """Inner bucket edges at the reference's quantiles (ties merged).

    >>> quantile_edges([1, 2, 3, 4], bins=2).tolist()
    [2.5]
    """
    return _edges(np.sort(np.asarray(reference, dtype=float)), bins)


@lru_cache(maxsize=64)  # one plan a (window size, bins): every window of a detector shares it
def _linear_plan(n: int, bins: int) -> tuple[np.ndarray, ...]:
    """The steps of numpy's ``quantile`` (method ``linear``) for ``n`` values, worked out once.

    The neighbours' positions in the sorted sample and the weights, by numpy's own steps
    (``_function_base_impl``: ``(n - 1) * q``, ``_get_indexes``, ``_get_gamma``, ``_lerp``).
    """
    q = np.linspace(0, 1, bins + 1)[1:-1]
    virtual = (n - 1) * q
    below = np.floor(virtual)
    above = below + 1
    at_top = virtual >= n - 1
    below[at_top], above[at_top] = -1, -1
    at_bottom = virtual < 0
    below[at_bottom], above[at_bottom] = 0, 0
    lo, hi = below.astype(np.intp), above.astype(np.intp)
    gamma = np.asarray(virtual - lo)
    return lo, hi, gamma, 1 - gamma, gamma >= 0.5


def _edges(ordered: np.ndarray, bins: int) -> np.ndarray:
    """:func:`quantile_edges` of an already sorted float sample.

    Equal to ``np.unique(np.quantile(ordered, np.linspace(0, 1, bins + 1)[1:-1]))`` bit for
    bit (tests/unit/monitoring/test_quantile_edges.py), without quantile's layers: about
    100 us a call on a 1000-value window, twice a window for each numeric PSI.
    """
    n = len(ordered)
    if n < 2 or np.isnan(ordered[-1]):  # NaN sorts last: numpy's own path handles it
        return np.unique(np.quantile(ordered, np.linspace(0, 1, bins + 1)[1:-1]))
    lo, hi, gamma, rest, upper = _linear_plan(n, bins)
    a, b = ordered[lo], ordered[hi]
    diff = b - a
    out = a + diff * gamma
    np.subtract(b, diff * rest, out=out, where=upper)
    return np.unique(out)


def psi_numeric(reference: ArrayLike, current: ArrayLike, bins: int = 10,
                eps: float = EPS) -> float:
    """PSI of two samples of numbers, in ``bins`` buckets cut at the reference's quantiles."""
    ordered = np.sort(np.asarray(reference, dtype=float))  # bucket counts ignore the order
    edges = _edges(ordered, bins)
    k = len(edges) + 1
    ref_idx = np.searchsorted(edges, ordered, side="right")
    cur_idx = np.searchsorted(edges, np.asarray(current, dtype=float), side="right")
    return psi(np.bincount(ref_idx, minlength=k), np.bincount(cur_idx, minlength=k), eps)


def ks_statistic(a: ArrayLike, b: ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs.

    >>> ks_statistic([1, 2, 3], [1, 2, 3]), ks_statistic([1, 2], [3, 4])
    (0.0, 1.0)
    """
    x = np.sort(np.asarray(a, dtype=float))
    y = np.sort(np.asarray(b, dtype=float))
    if len(x) == 0 or len(y) == 0:
        return 0.0
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / len(x)
    fy = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(fx - fy)))


def ks_critical(n: int, m: int, alpha: float) -> float:
    """The asymptotic critical value of the two-sample KS statistic at level ``alpha``.

    >>> round(ks_critical(1000, 1000, 0.05), 4)
    0.0607
    """
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def chi_squared(reference: ArrayLike, current: ArrayLike) -> tuple[float, int]:
    """Pearson's chi-squared statistic of homogeneity of two count vectors, and its dof.

    Categories empty in both are dropped; the degrees of freedom are the categories left
    minus one.

    >>> chi_squared([10, 10, 0], [10, 10, 0])
    (0.0, 1)
    """
    table = np.vstack([np.asarray(reference, dtype=float), np.asarray(current, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) <= 0).any():
        return 0.0, max(0, table.shape[1] - 1)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / expected).sum()), table.shape[1] - 1


@lru_cache(maxsize=256)  # one (dof, alpha) per window of each test: scipy's isf is slow
def chi2_critical(dof: int, alpha: float) -> float:
    """The chi-squared value exceeded with probability ``alpha`` at ``dof`` degrees of freedom.

    >>> round(chi2_critical(1, 0.05), 3)
    3.841
    """
    return float(_chi2.isf(alpha, dof)) if dof > 0 else math.inf
