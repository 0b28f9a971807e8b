"""The rows with the largest counts of a column whose counts all fade alike, O(1) per event.

When every count of a column is multiplied by the same factor per event (or per second)
and one count grows, only that row can change places; so the top ``m`` rows are kept
exactly by comparing the grown row with the weakest kept one.

>>> counts = np.zeros(3)
>>> top = TopTracker(1)
>>> counts[2] += 1; top.update(counts, 2)
True
>>> top.rows().tolist(), top.best
([2], 2)
"""

from __future__ import annotations

import numpy as np

from learning.jit import ENABLED, jit
from learning.rankers import grow

__all__ = ["TopTracker", "TopTrackers", "count_and_track", "rescale_count_and_track"]


class TopTracker:
    """The ``m`` rows with the largest counts, and the largest (``best``).

    Exact when one count grows at a time and all others keep their order.

    >>> counts = np.zeros(5)
    >>> top = TopTracker(2)
    >>> for item in [0, 1, 1, 3, 3, 3]:
    ...     counts[item] += 1
    ...     _ = top.update(counts, item)
    >>> sorted(top.rows().tolist()), top.best
    ([1, 3], 3)
    """

    def __init__(self, m: int):
        self.m = m
        self.best = -1
        self._rows = np.zeros(m, dtype=np.int64)
        self._n = 0
        self._member = np.zeros(0, dtype=bool)
        self._weakest = 0

    def update(self, counts: np.ndarray, item: int) -> bool:
        """``counts[item]`` just grew (every other count kept its order): keep the top m.

        Returns whether the set of rows changed.
        """
        if item >= len(self._member):
            self._member = grow(self._member, item + 1)
        if self.best < 0 or counts[item] > counts[self.best]:
            self.best = item
        rows = self._rows
        if self._member[item]:
            if self._n == self.m and rows[self._weakest] == item:
                self._weakest = int(np.argmin(counts[rows]))
            return False
        if self._n < self.m:
            rows[self._n] = item
            self._member[item] = True
            self._n += 1
            if self._n == self.m:
                self._weakest = int(np.argmin(counts[rows]))
            return True
        if counts[item] > counts[rows[self._weakest]]:
            self._member[rows[self._weakest]] = False
            rows[self._weakest] = item
            self._member[item] = True
            self._weakest = int(np.argmin(counts[rows]))
            return True
        return False

    def rows(self) -> np.ndarray:
        """The tracked rows (unordered)."""
        return self._rows[: self._n]


@jit
def _track(counts, j, item, rows, member, meta):  # type: ignore[no-untyped-def]
    """:meth:`TopTracker.update` of column ``j`` on arrays (``meta[j]``: best, n, weakest)."""
    m = rows.shape[1]
    best = meta[j, 0]
    if best < 0 or counts[item, j] > counts[best, j]:
        meta[j, 0] = item
    n = meta[j, 1]
    if member[item, j]:
        if n == m and rows[j, meta[j, 2]] == item:
            meta[j, 2] = _weakest(counts, j, rows)
        return False
    if n < m:
        rows[j, n] = item
        member[item, j] = True
        meta[j, 1] = n + 1
        if n + 1 == m:
            meta[j, 2] = _weakest(counts, j, rows)
        return True
    weakest = rows[j, meta[j, 2]]
    if counts[item, j] > counts[weakest, j]:
        member[weakest, j] = False
        rows[j, meta[j, 2]] = item
        member[item, j] = True
        meta[j, 2] = _weakest(counts, j, rows)
        return True
    return False


@jit
def _weakest(counts, j, rows):  # type: ignore[no-untyped-def]
    """``argmin(counts[rows[j], j])`` (the first on ties, as numpy)."""
    at = 0
    low = counts[rows[j, 0], j]
    for i in range(1, rows.shape[1]):
        v = counts[rows[j, i], j]
        if v < low:
            at = i
            low = v
    return at


@jit
def count_and_track(counts, scale, item, weight, rows, member, meta):  # type: ignore[no-untyped-def]
    """``counts[item] += weight * scale``, then every column's tracker; whether a set changed."""
    changed = False
    for j in range(counts.shape[1]):
        counts[item, j] += weight * scale[j]
    for j in range(counts.shape[1]):
        if _track(counts, j, item, rows, member, meta):
            changed = True
    return changed


@jit
def rescale_count_and_track(counts, scale, decays, growth, renorm_at, item, weight, rows,
                            member, meta):  # type: ignore[no-untyped-def]
    """``scale[:d] /= decays``, ``scale[d:] = growth``, then :func:`count_and_track`.

    Returns -1 without counting when ``scale.max() > renorm_at`` (renormalise, then count),
    else whether a set changed (1 or 0). A NaN scale never asks for a renormalisation (as
    numpy's ``max``, which is NaN then).
    """
    d = len(decays)
    for j in range(d):
        scale[j] /= decays[j]
    for j in range(len(growth)):
        scale[d + j] = growth[j]
    top = -np.inf
    for j in range(len(scale)):
        if scale[j] != scale[j]:
            top = np.nan
            break
        top = max(top, scale[j])
    if top > renorm_at:
        return -1
    return 1 if count_and_track(counts, scale, item, weight, rows, member, meta) else 0


class TopTrackers:
    """:class:`TopTracker` for every column of a count matrix, in arrays (one kernel call).

    ``column(j)`` is column ``j``'s tracker as an object (``best``, ``rows()``);
    :meth:`count` adds one event and updates them all (numba, or :class:`TopTracker`'s
    numpy steps with ``LIFELONG_NUMBA=0``).

    >>> counts, tops = np.zeros((4, 2)), TopTrackers(2, 2)
    >>> for item in [0, 1, 1, 3, 3, 3]:
    ...     _ = tops.count(counts, np.array([1.0, 0.5]), item, 1.0)
    >>> sorted(tops.column(0).rows().tolist()), tops.column(1).best
    ([1, 3], 3)
    """

    def __init__(self, m: int, columns: int):
        self.m = m
        self.rows = np.zeros((columns, m), dtype=np.int64)
        self.member = np.zeros((0, columns), dtype=np.bool_)
        self.meta = np.zeros((columns, 3), dtype=np.int64)  # best, n, weakest slot
        self.meta[:, 0] = -1

    @classmethod
    def of(cls, trackers: list[TopTracker]) -> TopTrackers:
        """The same state as ``trackers`` (one per column; an old checkpoint's)."""
        tops = cls(trackers[0].m, len(trackers))
        size = max(len(t._member) for t in trackers)
        tops.member = np.zeros((size, len(trackers)), dtype=np.bool_)
        for j, t in enumerate(trackers):
            tops.rows[j] = t._rows
            tops.member[: len(t._member), j] = t._member
            tops.meta[j] = (t.best, t._n, t._weakest)
        return tops

    def all_rows(self) -> np.ndarray:
        """Every column's rows, column after column (repeats kept); a view once all are full.

        The view follows later updates: a caller that caches it must drop it when
        :meth:`count` reports a change only while some column is not full yet.
        """
        n = self.meta[:, 1]
        if (n == self.m).all():
            return self.rows.reshape(-1)
        return np.concatenate([self.rows[j, : n[j]] for j in range(len(n))])

    def column(self, j: int) -> _Column:
        """Column ``j``'s tracker (a view: it follows every update)."""
        return _Column(self, j)

    def count(self, counts: np.ndarray, scale: np.ndarray, item: int, weight: float) -> bool:
        """``counts[item] += weight * scale`` and every tracker updated; whether a set changed."""
        if item >= len(self.member):
            self.member = grow(self.member, item + 1)
        if ENABLED:
            return bool(count_and_track(counts, scale, item, weight, self.rows, self.member,
                                        self.meta))
        counts[item] += weight * scale
        changed = False
        for j in range(counts.shape[1]):
            changed |= self._update_numpy(counts, j, item)
        return changed

    def rescale_and_count(self, counts: np.ndarray, scale: np.ndarray, decays: np.ndarray,
                          growth: np.ndarray, renorm_at: float, item: int, weight: float
                          ) -> int:
        """``scale[:d] /= decays``, ``scale[d:] = growth``, then :meth:`count` (one kernel).

        -1: nothing counted, ``scale.max() > renorm_at`` (renormalise, then :meth:`count`);
        else whether a set changed (1 or 0).
        """
        if not ENABLED:
            d = len(decays)
            scale[:d] /= decays
            scale[d:] = growth
            if scale.max() > renorm_at:
                return -1
            return int(self.count(counts, scale, item, weight))
        if item >= len(self.member):
            self.member = grow(self.member, item + 1)
        return int(rescale_count_and_track(counts, scale, decays, growth, renorm_at, item,
                                           weight, self.rows, self.member, self.meta))

    def _update_numpy(self, counts: np.ndarray, j: int, item: int) -> bool:
        """:meth:`TopTracker.update` of column ``j`` (the reference)."""
        tracker = TopTracker(self.m)
        tracker.best, tracker._n, tracker._weakest = self.meta[j].tolist()
        tracker._rows, tracker._member = self.rows[j], self.member[:, j].copy()
        changed = tracker.update(counts[:, j], item)
        self.member[:, j] = tracker._member[: len(self.member)]
        self.meta[j] = (tracker.best, tracker._n, tracker._weakest)
        return changed


class _Column:
    """One column of :class:`TopTrackers` seen as a :class:`TopTracker` (``best``, ``rows``)."""

    __slots__ = ("j", "tops")

    def __init__(self, tops: TopTrackers, j: int):
        self.tops = tops
        self.j = j

    @property
    def best(self) -> int:
        return int(self.tops.meta[self.j, 0])

    def rows(self) -> np.ndarray:
        return self.tops.rows[self.j, : self.tops.meta[self.j, 1]]
