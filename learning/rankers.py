"""Online rankers over a growable item index: the protocol and the popularity models.

Items are dense rows ``0, 1, 2...`` given by the caller in order of first appearance (see
:class:`~learning.ranking_learner.RankingLearner`); a ranker grows its arrays as rows
appear and ``score_items(user)`` returns one float64 score per row seen so far, computed
with array operations only. Users are string keys.

>>> pop = Popularity(decay=0.5)
>>> for item in [0, 0, 1]:
...     pop.learn_one("u", item)
>>> pop.score_items("anyone").round(3).tolist()   # item 0: 1*4 + 1*2 (older counts fade)
[0.75, 1.0]
>>> Popularity(decay=1.0).n_items
0
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Popularity", "Ranker", "grow"]

# Decayed scores are stored as value * scale, with scale growing by 1/decay per event, so a
# decay costs O(1) per event; everything is divided back down before it could overflow.
_RENORM_AT = 1e150


@runtime_checkable
class Ranker(Protocol):
    """An online implicit-feedback ranker: learn one interaction, score every known item."""

    n_items: int

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """Learn that ``user`` interacted with row ``item`` (with a positive ``weight``)."""
        ...

    def score_items(self, user: str) -> np.ndarray:
        """One float64 score per row ``0 .. n_items - 1``; higher is better."""
        ...


def grow(array: np.ndarray, rows: int) -> np.ndarray:
    """Return ``array`` with room for at least ``rows`` rows (capacity doubles; zero-filled).

    >>> bigger = grow(np.ones(2), 3)
    >>> len(bigger), bigger[:3].tolist()
    (16, [1.0, 1.0, 0.0])
    >>> grow(np.ones((1, 2)), 1).shape
    (1, 2)
    """
    if rows <= len(array):
        return array
    bigger = np.zeros((max(rows, 2 * len(array), 16), *array.shape[1:]), dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger


class Popularity:
    """Item popularity, optionally decayed by ``decay`` per event (1.0: all-time counts).

    The all-time model is the README's "most popular"; ``decay=0.999`` is its recency
    baseline (each past interaction counts 0.999 less per event since). The same scores go
    to every user.

    >>> p = Popularity(decay=1.0)
    >>> for item in [2, 0, 2]:
    ...     p.learn_one("u", item, weight=2.0)
    >>> p.score_items("v").tolist()
    [2.0, 0.0, 4.0]
    """

    def __init__(self, decay: float = 0.999):
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        self.decay = decay
        self.n_items = 0
        self._counts = np.zeros(0)
        self._scale = 1.0

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """Count one interaction with ``item`` (older counts fade by ``decay``)."""
        if item >= self.n_items:
            self.n_items = item + 1
            self._counts = grow(self._counts, self.n_items)
        if self.decay < 1.0:
            self._scale /= self.decay
            if self._scale > _RENORM_AT:
                self._counts /= self._scale
                self._scale = 1.0
        self._counts[item] += weight * self._scale

    def score_items(self, user: str) -> np.ndarray:
        """The (decayed) count of every item, in units of the latest event's weight."""
        return self._counts[: self.n_items] / self._scale

    def share(self) -> np.ndarray:
        """Each item's share of the total (decayed) count; all zeros before any event."""
        counts = self._counts[: self.n_items]
        total = counts.sum()
        return counts / total if total > 0 else np.zeros(self.n_items)
