"""Compiled (numba) kernels for the reranker's per-event path; numpy stays the reference.

:class:`~learning.rank_rerank.ListwiseRerank` and
:meth:`~learning.ranking_metrics.RankingPrequential.measure_candidates` spend their time in
~150 small numpy calls per ranked event. These kernels do the same work in one call each over
plain arrays: the candidate union (:func:`personal_candidates`, or
:func:`table_candidates` straight from the link tables; both in
:mod:`learning.rank_kernels_candidates`), the feature rows
(:func:`features`), the crossed linear score and the listwise Adagrad step (:func:`scores`,
:func:`softmax_step`) and the rank of the target plus the top ``k`` (:func:`measure`).
Tests check each against the numpy code on random states. The floating-point operations
are the numpy code's, in the same order: the candidates and feature rows are bit-identical
(the logs stay numpy calls); the dot products are summed left to right rather than by BLAS
and numba's ``exp`` may differ from numpy's in the last bit, so the scores and the step
agree to ~1e-15 relative, not bit for bit.

``LIFELONG_NUMBA=0`` in the environment (read at import) runs the numpy path; so does a
missing numba. Kernels are compiled on first use and cached on disk (``cache=True``, in
``__pycache__`` or numba's user-wide cache); when no cache directory is writable they are
compiled per process (logged once).

>>> import numpy as np
>>> rows = np.array([2, 5, 7])
>>> rank, top, status = measure(rows, np.array([3.0, 2.0, 2.5]), 5, np.array([7]),
...                             _scratch(8), 2, np.zeros(0), False)
>>> int(rank), top[:2].tolist(), int(status)
(2, [2, 5], 3)
"""

from __future__ import annotations

import logging

import numpy as np

from learning.jit import ENABLED, jit
from learning.rank_kernels_candidates import part_scores, personal_candidates, table_candidates

__all__ = ["ENABLED", "dense_measure", "features", "measure", "part_scores", "personal_candidates",
           "scores", "softmax_step", "table_candidates"]

log = logging.getLogger(__name__)


def _scratch(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.bool_)


@jit
def features_before_logs(rows, counts, best, co, seq, first, last, events, by_state, f, logs,
                         ages):  # type: ignore[no-untyped-def]
    """The inputs of :meth:`~learning.rank_rerank.ListwiseRerank._features`' logs.

    ``logs`` (n x 8, contiguous): columns 0-4, popularity over each column's top row, plus
    1e-4; columns 5-7, the cold / in-session / returning counts over their max in ``rows``,
    plus 1e-4. ``ages`` (n x 2, contiguous): events since first / last seen. ``f`` columns
    10-11: the co / seq scores (``co``, ``seq``: one per row).
    """
    n = len(rows)
    state_max = np.full(3, 1e-300)
    for i in range(n):
        r = rows[i]
        for j in range(5):
            logs[i, j] = counts[r, j] / counts[best[j], j] + 1e-4
        f[i, 10] = co[i]
        f[i, 11] = seq[i]
        ages[i, 0] = events - first[r]
        ages[i, 1] = events - last[r]
        for j in range(3):
            state_max[j] = max(state_max[j], by_state[r, j])
    for i in range(n):
        for j in range(3):
            logs[i, 5 + j] = by_state[rows[i], j] / state_max[j] + 1e-4


@jit
def features_after_logs(f, logs, ages, level, gap, cuts):  # type: ignore[no-untyped-def]
    """The rest of the feature rows from the logs of ``logs`` and the ``log1p`` of ``ages``.

    ``level``: the user's mean log long popularity (NaN: none); ``gap``: the user's scaled
    log time since their last event.
    """
    n = len(f)
    top0 = 0.0
    top1 = 0.0
    for i in range(n):
        for j in range(5):
            f[i, j] = logs[i, j]
        for j in range(3):
            f[i, 19 + j] = logs[i, 5 + j]
        f[i, 5] = f[i, 0] - f[i, 2]
        f[i, 12] = ages[i, 0] / 10.0
        f[i, 13] = ages[i, 1] / 10.0
        top0 = max(top0, f[i, 10])
        top1 = max(top1, f[i, 11])
    order = np.argsort(-f[:, 1], kind="mergesort")
    for place in range(n):
        i = order[place]
        for c in range(len(cuts)):
            f[i, 14 + c] = 1.0 if place < cuts[c] else 0.0
    for i in range(n):
        f[i, 6] = f[i, 10] / top0 if top0 > 0 else 0.0
        f[i, 7] = f[i, 11] / top1 if top1 > 0 else 0.0
        f[i, 8] = 1.0 if f[i, 10] > 0.0 else 0.0
        f[i, 9] = 1.0 if f[i, 11] > 0.0 else 0.0
        f[i, 18] = 0.0 if level != level else -abs(f[i, 2] - level)
        f[i, 22] = f[i, 6] * gap
        f[i, 23] = f[i, 7] * gap
        f[i, 24] = f[i, 6] * f[i, 1] / 10.0
        f[i, 25] = f[i, 1] * gap


def features(rows: np.ndarray, counts: np.ndarray, best: np.ndarray, co: np.ndarray,
             seq: np.ndarray, first: np.ndarray, last: np.ndarray, events: float,
             level: float, by_state: np.ndarray, gap: float, cuts: np.ndarray) -> np.ndarray:
    """:meth:`~learning.rank_rerank.ListwiseRerank._features` in two kernels around numpy logs.

    The logs stay numpy's own calls, so the rows are bit-identical to the reference (numba's
    scalar ``log`` differs in the last bit now and then). They run on two contiguous
    buffers, one ``log`` and one ``log1p`` call: numpy's SIMD loop gives the same bits on
    contiguous and strided arrays and is ~2.5x faster on contiguous ones (tested).
    ``best``: each popularity column's top row; ``co``, ``seq``: the parts' scores of
    ``rows`` (one per row).
    """
    n = len(rows)
    f = np.empty((n, 26))
    logs = np.empty((n, 8))
    ages = np.empty((n, 2))
    features_before_logs(rows, counts, best, co, seq, first, last, events, by_state, f, logs,
                         ages)
    np.log(logs, out=logs)
    np.log1p(ages, out=ages)
    features_after_logs(f, logs, ages, level, gap, cuts)
    return f


@jit
def scores(feats, w, ctx):  # type: ignore[no-untyped-def]
    """``feats @ (w[0] + w[ctx])``, summed left to right."""
    n, m = feats.shape
    out = np.empty(n)
    for i in range(n):
        s = 0.0
        for j in range(m):
            s += feats[i, j] * (w[0, j] + w[ctx, j])
        out[i] = s
    return out


@jit
def softmax_step(feats, raw, at, seen, rows, mask, w, g2, ctx, lr):  # type: ignore[no-untyped-def]
    """One Adagrad step on ``log softmax(raw)[at]``, rows of ``seen`` left out (``mask``: False)."""
    n, m = feats.shape
    for s in seen:
        mask[s] = True
    p = np.empty(n)
    t = raw[at]
    total = 0.0
    for i in range(n):
        p[i] = 0.0 if mask[rows[i]] else np.exp(raw[i] - t)
        total += p[i]
    for s in seen:
        mask[s] = False
    grad = np.zeros(m)
    for i in range(n):
        g = (1.0 if i == at else 0.0) - p[i] / total
        for j in range(m):
            grad[j] += g * feats[i, j]
    for c in (0, ctx):
        for j in range(m):
            g2[c, j] += grad[j] * grad[j]
            w[c, j] += lr * grad[j] / np.sqrt(g2[c, j])


@jit
def measure(rows, values, target, exclude, mask, k, floor, bound):  # type: ignore[no-untyped-def]
    """The target's rank and top ``k`` from candidates that outrank every other row.

    ``status`` bit 1: the rank is exact (the target is an eligible candidate, or ``floor``,
    the dense scores of the other rows, is given), or, with ``bound``, a lower bound
    ``1 + eligible`` when the target is not an eligible candidate and ``eligible >= k``
    (then ``rank > k`` however the other rows score: no hit, no gain); bit 2: ``top`` (the
    ``k`` best eligible rows, ties to the higher row) is exact. NaN values: status 0.
    """
    for e in exclude:
        mask[e] = True
    n = len(rows)
    at = -1
    eligible = 0
    nan = False
    for i in range(n):
        if values[i] != values[i]:
            nan = True
        if not mask[rows[i]]:
            eligible += 1
            if rows[i] == target:
                at = i
    top = np.empty(k, dtype=np.int64)
    status = 0
    rank = 0
    if not nan:
        if at >= 0:
            t = values[at]
            rank = 1
            for i in range(n):
                if not mask[rows[i]] and (values[i] > t or (values[i] == t and i > at)):
                    rank += 1
            status |= 1
        elif bound and eligible >= k:  # beyond the list: the exact rank changes no figure
            rank = 1 + eligible
            status |= 1
        elif len(floor):  # every eligible candidate outranks the target, then the rest
            rank = 1 + eligible
            t = floor[target]
            p = 0
            for i in range(len(floor)):
                while p < n and rows[p] < i:
                    p += 1
                if (p < n and rows[p] == i) or mask[i]:
                    continue  # a candidate (counted above) or excluded
                if floor[i] > t or (floor[i] == t and i > target):
                    rank += 1
            status |= 1
        if eligible >= k:
            best_v = np.full(k, -np.inf)
            best_r = np.full(k, -1, dtype=np.int64)
            for i in range(n):
                r = rows[i]
                v = values[i]
                if mask[r] or not (v > best_v[k - 1] or (v == best_v[k - 1] and r > best_r[k - 1])):
                    continue
                j = k - 1
                while j > 0 and (v > best_v[j - 1] or (v == best_v[j - 1] and r > best_r[j - 1])):
                    best_v[j] = best_v[j - 1]
                    best_r[j] = best_r[j - 1]
                    j -= 1
                best_v[j] = v
                best_r[j] = r
            top[:] = best_r
            status |= 2
    for e in exclude:
        mask[e] = False
    return rank, top, status


@jit
def dense_measure(scores, target, exclude, mask, k):  # type: ignore[no-untyped-def]
    """``rank_of(scores, target, exclude)`` and ``top_k(scores, k, exclude)`` in one pass.

    Returns ``(rank, top, n_top)``: the top rows are ``top[:n_top]`` (ties to the higher
    row); ``n_top`` is -1 when a score is not finite (use numpy: its top-k has its own
    rules there). ``mask`` (False, at least ``len(scores)`` long) is left False.
    """
    for e in exclude:
        mask[e] = True
    n = len(scores)
    t = scores[target]
    rank = 1
    best_v = np.full(k, -np.inf)
    best_r = np.full(k, -1, dtype=np.int64)
    filled = 0
    finite = True
    for i in range(n):
        if mask[i]:
            continue
        v = scores[i]
        if v > t or (v == t and i > target):
            rank += 1
        if not np.isfinite(v):
            finite = False
            continue
        if filled < k:
            filled += 1
        elif not (v >= best_v[k - 1]):  # rows ascending: an equal value is a higher row
            continue
        j = filled - 1
        while j > 0 and v >= best_v[j - 1]:
            best_v[j] = best_v[j - 1]
            best_r[j] = best_r[j - 1]
            j -= 1
        best_v[j] = v
        best_r[j] = i
    for e in exclude:
        mask[e] = False
    return rank, best_r, filled if finite else -1
