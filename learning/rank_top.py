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

from learning.rankers import grow

__all__ = ["TopTracker"]


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
