"""Item-kNN over users' whole histories: a candidate source for the reranker (rerank-knn).

:class:`HistoryKNN` keeps item-item co-occurrence counts over every pair of items a user
interacted with (not only the last few): the new item is linked with each earlier item of
its user, the pair counting ``1 / log2(1 + n)`` for a user with ``n`` earlier items (an
inverse user frequency: a user who rates hundreds of films says less about each pair), all
counts fading by ``decay`` per event. A user's score for item ``j`` is the cosine
``sum_h w_h C[h, j] / sqrt(n_h n_j)`` over their last ``history`` items ``h`` (recency
weights ``w_h = position_decay ** age``; ``alpha`` other than 0.5 divides by
``n_h ** alpha * n_j ** (1 - alpha)`` instead: 1 is the conditional ``P(j | h)``).

>>> knn = HistoryKNN(decay=1.0)
>>> for user, item in [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0), ("c", 2)]:
...     knn.learn_one(user, item)
>>> knn.learn_one("d", 0); knn.score_items("d").round(3).tolist()   # 0 went with 1 twice
[0.0, 0.707, 0.5]
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from learning.rank_sequence import _Row
from learning.rankers import grow

__all__ = ["HistoryKNN"]

_RENORM_AT = 1e100


class HistoryKNN:
    """Item-kNN over users' whole histories, IUF-weighted and cosine-normalised (module doc).

    Links are sparse rows (:class:`~learning.rank_sequence._Row`): each item keeps at most
    ``max_neighbours`` links (the weakest dropped when it holds twice as many), so memory
    is bounded by ``items * 2 * max_neighbours``; a user keeps their last ``max_history``
    items (the pairs learned) and scores from the last ``history``.
    """

    def __init__(self, history: int = 50, *, decay: float = 0.9999,
                 position_decay: float = 0.97, max_history: int = 400,
                 max_neighbours: int = 200, alpha: float = 0.5):
        if history < 1 or max_history < history:
            raise ValueError(f"need 1 <= history <= max_history, got {history}, {max_history}")
        if not 0.0 < decay <= 1.0 or not 0.0 < position_decay <= 1.0:
            raise ValueError("decay and position_decay must be in (0, 1]")
        if max_neighbours < 1:
            raise ValueError(f"max_neighbours must be >= 1, got {max_neighbours}")
        self.history = history
        self.decay = decay
        self.position_decay = position_decay
        self.max_history = max_history
        self.max_neighbours = max_neighbours
        self.alpha = alpha
        self.n_items = 0
        self._links: dict[int, _Row] = {}
        self._n = np.zeros(0)
        self._scale = 1.0
        self._recent: dict[str, deque[int]] = {}  # the name erasure drops (forget_ranker_user)

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """Link ``item`` with the user's last ``max_history`` items (a repeat of one: nothing)."""
        if item >= self.n_items:
            self.n_items = item + 1
            self._n = grow(self._n, self.n_items)
        if self.decay < 1.0:
            self._scale /= self.decay
            if self._scale > _RENORM_AT:
                for row in self._links.values():
                    row.values[: row.n] /= self._scale
                self._n /= self._scale
                self._scale = 1.0
        recent = self._recent.get(user)
        if recent is None:
            recent = self._recent[user] = deque(maxlen=self.max_history)
        elif item in recent:
            return
        if recent:
            w = weight * self._scale / math.log2(1 + len(recent))
            for prev in recent:
                self._link(prev, item, w)
                self._link(item, prev, w)
        self._n[item] += weight * self._scale
        recent.append(item)

    def _link(self, a: int, b: int, value: float) -> None:
        row = self._links.get(a)
        if row is None:
            row = self._links[a] = _Row()
        row.add(b, value)
        if row.n > 2 * self.max_neighbours:
            row.keep_strongest(self.max_neighbours)

    def score_items(self, user: str) -> np.ndarray:
        """Cosine item-kNN scores of every row for ``user`` (zeros for an unknown user)."""
        scores = np.zeros(self.n_items)
        recent = self._recent.get(user)
        if not recent:
            return scores
        n = self._n[: self.n_items]
        weight = 1.0
        for k, prev in enumerate(reversed(recent)):
            if k == self.history:
                break
            row = self._links.get(prev)
            if row is not None and row.n:
                norm = n[prev] ** self.alpha
                scores[row.keys[: row.n]] += row.values[: row.n] * (weight / norm)
            weight *= self.position_decay
        if self.alpha == 0.5:
            scores /= np.sqrt(np.maximum(n, 1e-300))
        elif self.alpha < 1.0:
            scores /= np.maximum(n, 1e-300) ** (1.0 - self.alpha)
        return scores
