"""Online BPR (Rendle et al. 2009) in numpy: one SGD step per event with sampled negatives.

For an interaction ``(user, item)`` the model draws ``n_negatives`` other known items
(``"uniform"`` over the catalogue, or ``"popularity"``: in proportion to how often they
occurred among the last ``pool_size`` events) and takes one pairwise logistic step per
pair, all pairs of the event at once: ``x = p_u . (q_i - q_j) + b_i - b_j``,
``loss = -log sigmoid(x)``. Factors start at ``Normal(0, init_std)`` from a seeded
generator; rows grow as items and users appear. ``score_items`` is one matrix-vector
product (``score_rows`` the same on some rows); an unknown user scores every item by its
bias alone. With numba the step is :mod:`learning.rank_bpr_kernel`'s compiled one (the same
update; ``LIFELONG_NUMBA=0``: numpy).

>>> bpr = BPR(n_factors=4, seed=1)
>>> for _ in range(30):
...     for user, item in [("a", 0), ("a", 1), ("b", 2), ("b", 3)]:
...         bpr.learn_one(user, item)
>>> s = bpr.score_items("a")
>>> bool(min(s[0], s[1]) > max(s[2], s[3]))
True
>>> bpr.item_vectors().shape
(4, 4)
"""

from __future__ import annotations

import numpy as np

from learning import rank_bpr_kernel
from learning.rankers import grow

__all__ = ["BPR"]


class BPR:
    """Bayesian personalised ranking with SGD per event (see module doc)."""

    def __init__(self, n_factors: int = 32, *, n_negatives: int = 4, sampling: str = "uniform",
                 lr: float = 0.05, reg: float = 0.002, init_std: float = 0.1,
                 item_bias: bool = True, pool_size: int = 100_000, seed: int = 42):
        if n_factors < 1 or n_negatives < 1:
            raise ValueError("n_factors and n_negatives must be >= 1")
        if sampling not in ("uniform", "popularity"):
            raise ValueError(f"sampling must be 'uniform' or 'popularity', got {sampling!r}")
        self.n_factors = n_factors
        self.n_negatives = n_negatives
        self.sampling = sampling
        self.lr = lr
        self.reg = reg
        self.init_std = init_std
        self.item_bias = item_bias
        self.pool_size = pool_size
        self.seed = seed
        self.n_items = 0
        self._rng = np.random.default_rng(seed)
        self._items = np.zeros((0, n_factors))
        self._bias = np.zeros(0)
        self._users: dict[str, int] = {}
        self._user_factors = np.zeros((0, n_factors))
        self._pool = np.zeros(0, dtype=np.int64)  # ring of recent positives (popularity)
        self._pooled = 0

    def _user_row(self, user: str) -> int:
        row = self._users.get(user)
        if row is None:
            row = self._users[user] = len(self._users)
            self._user_factors = grow(self._user_factors, row + 1)
            self._user_factors[row] = self._rng.normal(0.0, self.init_std, self.n_factors)
        return row

    def _add_item(self, item: int) -> None:
        new = item + 1 - self.n_items
        self._items = grow(self._items, item + 1)
        self._bias = grow(self._bias, item + 1)
        self._items[self.n_items : item + 1] = self._rng.normal(
            0.0, self.init_std, (new, self.n_factors))
        self.n_items = item + 1

    def _negatives(self) -> np.ndarray:
        if self.sampling == "popularity" and self._pooled:
            filled = min(self._pooled, self.pool_size)
            return self._pool[self._rng.integers(0, filled, self.n_negatives)]
        return self._rng.integers(0, self.n_items, self.n_negatives)

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0, *,
                  negatives: np.ndarray | None = None) -> None:
        """One pairwise step against ``n_negatives`` sampled items, scaled by ``weight``.

        ``negatives``: known item rows the caller chose (e.g. from the user's candidate
        list), learned as negatives in the same step after the sampled ones.
        """
        if item >= self.n_items:
            self._add_item(item)
        u = self._user_row(user)
        negs = self._negatives()
        if negatives is not None and len(negatives):
            negs = np.concatenate([negs, np.asarray(negatives, dtype=np.int64)])
        negs = negs[negs != item]
        if len(negs) and rank_bpr_kernel.step is not None:  # compiled, same update
            rank_bpr_kernel.step(self._user_factors, self._items, self._bias, u, item, negs,
                                 float(weight), float(self.lr), float(self.reg),
                                 bool(self.item_bias))
        elif len(negs):  # the numpy reference path (LIFELONG_NUMBA=0)
            p = self._user_factors[u].copy()
            qi = self._items[item].copy()
            qj = self._items[negs]
            x = (qi - qj) @ p + (self._bias[item] - self._bias[negs]) * self.item_bias
            g = weight / (1.0 + np.exp(np.clip(x, -35.0, 35.0)))  # sigmoid(-x) per pair
            lr, reg = self.lr, self.reg
            self._user_factors[u] += lr * (g @ (qi - qj) - reg * p)
            self._items[item] += lr * (g.sum() * p - reg * qi)
            np.add.at(self._items, negs, -lr * (g[:, None] * p + reg * qj))
            if self.item_bias:
                self._bias[item] += lr * (g.sum() - reg * self._bias[item])
                np.add.at(self._bias, negs, -lr * (g + reg * self._bias[negs]))
        if self.sampling == "popularity":
            self._pool = grow(self._pool, min(self._pooled + 1, self.pool_size))
            self._pool[self._pooled % self.pool_size] = item
            self._pooled += 1

    def learn_negative(self, user: str, item: int, ts: float = 0.0) -> None:
        """Learn that ``user`` was shown ``item`` and did not take it.

        One logistic step pushes its score ``x = p_u . q_j + b_j`` down (``loss = -log
        sigmoid(-x)``): an explicit negative (from the impression join), on top of the
        sampled ones. An unknown user or item is ignored.
        """
        row = self._users.get(user)
        if row is None or not 0 <= item < self.n_items:
            return
        p = self._user_factors[row].copy()
        q = self._items[item].copy()
        x = float(p @ q) + (float(self._bias[item]) if self.item_bias else 0.0)
        g = 1.0 / (1.0 + np.exp(-np.clip(x, -35.0, 35.0)))  # sigmoid(x)
        lr, reg = self.lr, self.reg
        self._user_factors[row] -= lr * (g * q + reg * p)
        self._items[item] -= lr * (g * p + reg * q)
        if self.item_bias:
            self._bias[item] -= lr * (g + reg * self._bias[item])

    def score_items(self, user: str) -> np.ndarray:
        """``q_j . p_u + b_j`` for every item (bias only for an unknown user)."""
        n = self.n_items
        bias = self._bias[:n] if self.item_bias else np.zeros(n)
        row = self._users.get(user)
        if row is None:
            return bias.copy()
        return self._items[:n] @ self._user_factors[row] + bias

    def score_rows(self, user: str, rows: np.ndarray) -> np.ndarray:
        """``score_items(user)[rows]`` without scoring the other items (rows < ``n_items``)."""
        bias = self._bias[rows] if self.item_bias else np.zeros(len(rows))
        row = self._users.get(user)
        if row is None:
            return bias.copy()
        return self._items[rows] @ self._user_factors[row] + bias

    def item_vectors(self) -> np.ndarray:
        """Item factors in row order, ``(n_items, n_factors)``."""
        return self._items[: self.n_items]
