"""The reranker's candidate union as numba kernels (re-exported by :mod:`learning.rank_kernels`).

:func:`personal_candidates` takes the parts' sparse terms (``CoOccurrence.score_terms``);
:func:`table_candidates` lists those terms itself from the two parts' link tables
(:func:`learning.rank_links.terms`), so a ranked event makes one call, not three. Both build
what :meth:`~learning.rank_rerank.ListwiseRerank._candidate_rows` builds from the dense part
scores, with the same additions in the same order (bit-identical).

>>> import numpy as np
>>> flags, co, seq = np.zeros(4, dtype=np.uint8), np.zeros(4), np.zeros(4)
>>> rows, co_s, seq_s, ok = personal_candidates(
...     np.array([3]), np.array([1, 2]), np.array([0.5, 0.25]), np.zeros(0, dtype=np.int64),
...     np.zeros(0), 1, flags, co, seq)
>>> rows.tolist(), co_s.tolist(), bool(ok), int(flags.sum()), float(co.sum())
([1, 3], [0.5, 0.0], True, 0, 0.0)
"""

from __future__ import annotations

import numpy as np

from learning.jit import jit
from learning.rank_links import terms

__all__ = ["part_scores", "personal_candidates", "table_candidates"]


@jit
def _mark_part(keys, values, buf, flags, bit, n_keep, listed, m):  # type: ignore[no-untyped-def]
    """Add a part's terms into ``buf``; flag (bit 1) and list its ``n_keep`` best non-zero rows.

    Returns the new length of ``listed`` and False on a tie across the cut.
    """
    listed_n = m
    for i in range(len(keys)):
        buf[keys[i]] += values[i]
    support = np.empty(len(keys), dtype=np.int64)
    m = 0
    for k in keys:
        if not flags[k] & bit and buf[k] != 0.0:
            flags[k] |= bit
            support[m] = k
            m += 1
    if m > n_keep:
        vals = np.empty(m)
        for i in range(m):
            vals[i] = buf[support[i]]
        kth = np.partition(vals, m - n_keep)[m - n_keep]
        above = 0
        for v in vals:
            if v >= kth:
                above += 1
        if above != n_keep or kth != kth:  # ties across the cut: argpartition decides
            return listed_n, False
    else:
        kth = -np.inf
    for i in range(m):
        k = support[i]
        if buf[k] >= kth and not flags[k] & 1:
            flags[k] |= 1
            listed[listed_n] = k
            listed_n += 1
    return listed_n, True


@jit
def personal_candidates(popular, co_keys, co_values, seq_keys, seq_values, n_personal, flags,
                        co_buf, seq_buf):  # type: ignore[no-untyped-def]
    """The reranker's candidates from the parts' sparse terms (``CoOccurrence.score_terms``).

    The rows of ``popular`` and each part's ``n_personal`` best non-zero rows, as
    :meth:`~learning.rank_rerank.ListwiseRerank._candidate_rows` builds them from the
    dense part scores.

    Returns ``(rows, co, seq, ok)``: the candidate rows ascending and the parts' scores on
    them. ``flags`` (uint8) and the float buffers ``co_buf`` / ``seq_buf`` (zeros, at least
    ``n_items`` long) are left zero.
    """
    listed = np.empty(len(popular) + len(co_keys) + len(seq_keys), dtype=np.int64)
    m = 0
    for r in popular:
        if not flags[r] & 1:
            flags[r] |= 1
            listed[m] = r
            m += 1
    m, ok = _mark_part(co_keys, co_values, co_buf, flags, 2, n_personal, listed, m)
    if ok:
        m, ok = _mark_part(seq_keys, seq_values, seq_buf, flags, 4, n_personal, listed, m)
    rows = np.sort(listed[:m])
    co = np.empty(len(rows))
    seq = np.empty(len(rows))
    for i in range(len(rows)):
        co[i] = co_buf[rows[i]]
        seq[i] = seq_buf[rows[i]]
    for k in co_keys:
        co_buf[k] = 0.0
        flags[k] = 0
    for k in seq_keys:
        seq_buf[k] = 0.0
        flags[k] = 0
    for r in popular:
        flags[r] = 0
    return rows, co, seq, ok



@jit
def table_candidates(popular, co_keys, co_values, co_idx, co_total, co_recent, co_decay,
                     seq_keys, seq_values, seq_idx, seq_total, seq_recent, seq_decay,
                     n_personal, flags, co_buf, seq_buf):  # type: ignore[no-untyped-def]
    """:func:`personal_candidates` of the two parts' :func:`~learning.rank_links.terms`."""
    ck, cv = terms(co_keys, co_values, co_idx, co_total, co_recent, co_decay)
    sk, sv = terms(seq_keys, seq_values, seq_idx, seq_total, seq_recent, seq_decay)
    return personal_candidates(popular, ck, cv, sk, sv, n_personal, flags, co_buf, seq_buf)


@jit
def part_scores(keys, values, idx, total, recent, decay, buf):  # type: ignore[no-untyped-def]
    """A part's non-zero ``score_items`` entries: ``(rows ascending, values)``, from its links.

    The terms are added in :meth:`~learning.rank_sequence.CoOccurrence.score_items`' order,
    so the values are its values bit for bit; every other row scores 0. ``buf`` (zeros, at
    least ``n_items`` long) is left zero.
    """
    ks, vs = terms(keys, values, idx, total, recent, decay)
    low, high = len(buf), -1
    for i in range(len(ks)):
        k = ks[i]
        buf[k] += vs[i]
        low = min(low, k)
        high = max(high, k)
    rows = np.empty(len(ks), dtype=np.int64)
    out = np.empty(len(ks))
    m = 0
    if high - low < 8 * len(ks):  # a scan of the span: cheaper than sorting the terms
        for k in range(low, high + 1):
            v = buf[k]
            if v != 0.0:
                rows[m] = k
                out[m] = v
                m += 1
            buf[k] = 0.0
        return rows[:m], out[:m]
    for k in ks:  # each row once (its first term), then the few rows sorted
        v = buf[k]
        buf[k] = 0.0
        if v != 0.0:
            rows[m] = k
            out[m] = v
            m += 1
    order = np.argsort(rows[:m])
    return rows[:m][order], out[:m][order]
