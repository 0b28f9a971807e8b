"""Compiled (numba) kernels for the reranker's per-event path; numpy stays the reference.

:class:`~learning.rank_rerank.ListwiseRerank` and
:meth:`~learning.ranking_metrics.RankingPrequential.measure_candidates` spend their time in
~150 small numpy calls per ranked event. These kernels do the same work in one call each over
plain arrays: the candidate union (:func:`personal_candidates`, or
:func:`table_candidates` straight from the link tables; both in
:mod:`learning.rank_kernels_candidates`), the feature rows
(:func:`features`), the crossed linear score and the listwise Adagrad step (:func:`scores`,
:func:`softmax_step`) and the rank of the target plus the top ``k`` (:func:`measure`).
The reranker's ranked event calls the union, the features and the score fused into two
calls around numpy's logs (:func:`candidate_features`, :func:`features_scores`, in
:mod:`learning.rank_kernels_fused`).
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
from learning.rank_kernels_features import features, scores
from learning.rank_kernels_fused import candidate_features, features_scores

__all__ = ["ENABLED", "candidate_features", "dense_measure", "features", "features_scores",
           "measure", "part_scores", "personal_candidates", "scores", "softmax_step",
           "table_candidates"]

log = logging.getLogger(__name__)


def _scratch(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.bool_)


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
