"""The reranker's per-event kernels fused into two calls (see :mod:`~.rank_kernels`).

A ranked event used to make five compiled calls (the candidate union, the feature inputs,
the rest of the features, the scores), each paying numba's dispatch (~0.3 us per array
argument) and the boxing of the arrays handed from one to the next. Here the union and the
inputs of the logs are one call (:func:`candidate_features`), the features after the logs
and the crossed linear score another (:func:`features_scores`); between them the logs stay
numpy's own calls, so the rows are bit-identical to the reference path (numba's scalar
``log`` differs in the last bit now and then). Each half calls the same kernels as before,
in the same order: the figures are the unfused ones bit for bit.

>>> import numpy as np
>>> counts, by_state = np.array([[1.0] * 5, [2.0] * 5]), np.ones((2, 3))
>>> keys, idx = np.zeros(1, dtype=np.int64), np.zeros((2, 3), dtype=np.int64)
>>> rows, f, logs, ages, ok = candidate_features(
...     np.array([1, 0]), keys, np.zeros(1), idx, np.ones(2), np.zeros(0, dtype=np.int64), 1.0,
...     keys, np.zeros(1), idx, np.ones(2), np.zeros(0, dtype=np.int64), 1.0, 3,
...     np.zeros(2, dtype=np.uint8), np.zeros(2), np.zeros(2), counts, np.array([1] * 5),
...     np.zeros(2), np.zeros(2), 2.0, by_state)
>>> rows.tolist(), bool(ok), logs.shape, ages[:, 0].tolist()
([0, 1], True, (2, 8), [2.0, 2.0])
>>> np.log(logs, out=logs); np.log1p(ages, out=ages)  # doctest: +ELLIPSIS
array(...)
>>> raw = features_scores(f, logs, ages, np.nan, 1.0, np.array([1, 3, 10, 30]),
...                       np.eye(2, 26, 1), 1)
>>> bool(raw[1] > raw[0])  # the more popular row scores higher under log_pop_mid
True
"""

from __future__ import annotations

import numpy as np

from learning.jit import jit
from learning.rank_kernels_candidates import table_candidates
from learning.rank_kernels_features import features_after_logs, features_before_logs, scores

__all__ = ["candidate_features", "features_scores"]


@jit
def candidate_features(popular, co_keys, co_values, co_idx, co_total, co_recent, co_decay,
                       seq_keys, seq_values, seq_idx, seq_total, seq_recent, seq_decay,
                       n_personal, flags, co_buf, seq_buf, counts, best, first, last, events,
                       by_state):  # type: ignore[no-untyped-def]
    """:func:`table_candidates`, then :func:`features_before_logs` of its rows.

    Returns ``(rows, f, logs, ages, ok)``: take the logs of ``logs`` and the ``log1p`` of
    ``ages`` in place, then :func:`features_scores`. With ``ok`` False (a tie across a
    part's cut) only ``rows`` is meaningful: build the list the numpy way.
    """
    rows, co, seq, ok = table_candidates(popular, co_keys, co_values, co_idx, co_total,
                                         co_recent, co_decay, seq_keys, seq_values, seq_idx,
                                         seq_total, seq_recent, seq_decay, n_personal, flags,
                                         co_buf, seq_buf)
    n = len(rows)
    f = np.empty((n, 26))
    logs = np.empty((n, 8))
    ages = np.empty((n, 2))
    if ok:
        features_before_logs(rows, counts, best, co, seq, first, last, events, by_state, f,
                             logs, ages)
    return rows, f, logs, ages, ok


@jit
def features_scores(f, logs, ages, level, gap, cuts, w, ctx):  # type: ignore[no-untyped-def]
    """:func:`features_after_logs` into ``f``, then its :func:`scores` ``f @ (w[0] + w[ctx])``."""
    features_after_logs(f, logs, ages, level, gap, cuts)
    return scores(f, w, ctx)
