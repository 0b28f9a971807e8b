"""Exact user and item biases: per-event fold-in, and a refit over all history each round.

On sparse rating streams (most users rate a handful of items, many are new) most of what
can be predicted is a user's and an item's offset from the mean. :class:`BiasModel` keeps,
per user and per item, a count and a residual sum, and predicts

    mu + b_u + b_i,   b_u = sum_u / (n_u + user_prior),   b_i = sum_i / (n_i + item_prior)

(shrunk means: a new user gets a bias after one event, and it converges to the mean
offset). Per event, :meth:`BiasModel.update` folds the event into both sums. In a round,
:meth:`BiasModel.refit` solves the same regularised least squares over every event kept in
a :class:`History` (a few alternating sweeps, vectorised with ``np.bincount``), and restates
the sums so the per-event fold-in continues from that solution.

>>> model, hist = BiasModel(user_prior=1.0, item_prior=1.0), History()
>>> for u, i, y in [("a", "x", 8.0), ("a", "y", 6.0), ("b", "x", 9.0)]:
...     _ = model.update(u, i, y)
...     hist.add(model.user_index(u), model.item_index(i), y)
>>> model.refit(hist)
>>> round(model.predict("a", "x"), 2), round(model.predict("new", "x"), 2)
(7.81, 8.23)
"""

from __future__ import annotations

import numpy as np

__all__ = ["BiasModel", "History"]


class History:
    """The last ``capacity`` events as compact arrays (user index, item index, value)."""

    def __init__(self, capacity: int = 2_000_000):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._u = np.zeros(1024, dtype=np.int32)
        self._i = np.zeros(1024, dtype=np.int32)
        self._y = np.zeros(1024, dtype=np.float32)
        self._n = 0  # events ever added
        self._pos = 0  # next slot

    def __len__(self) -> int:
        return min(self._n, self.capacity)

    def add(self, user: int, item: int, value: float) -> None:
        """Keep one event (the oldest goes once ``capacity`` are kept)."""
        if self._pos >= self._u.size and self._u.size < self.capacity:
            grow = min(self.capacity, 2 * self._u.size)
            self._u, self._i, self._y = (np.resize(a, grow) for a in (self._u, self._i, self._y))
        if self._pos >= self.capacity:
            self._pos = 0
        self._u[self._pos], self._i[self._pos], self._y[self._pos] = user, item, value
        self._pos += 1
        self._n += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(users, items, values)`` of the kept events."""
        n = len(self)
        return self._u[:n], self._i[:n], self._y[:n]


class BiasModel:
    """``mu + b_u + b_i`` with shrunk-mean biases; ``sweeps`` alternating steps per refit."""

    def __init__(self, user_prior: float = 3.0, item_prior: float = 2.0, sweeps: int = 3,
                 prior_mean: float = 0.0):
        if user_prior <= 0 or item_prior <= 0 or sweeps < 1:
            raise ValueError("priors must be > 0 and sweeps >= 1")
        self.user_prior = user_prior
        self.item_prior = item_prior
        self.sweeps = sweeps
        self.mu = prior_mean  # the running mean until the first refit
        self.refits = 0
        self._total = 0.0
        self._count = 0
        self._users: dict[str, int] = {}
        self._items: dict[str, int] = {}
        self._nu: list[float] = []
        self._su: list[float] = []
        self._ni: list[float] = []
        self._si: list[float] = []

    def user_index(self, user: str) -> int:
        """The row of ``user`` (added if new)."""
        row = self._users.get(user)
        if row is None:
            row = self._users[user] = len(self._nu)
            self._nu.append(0.0)
            self._su.append(0.0)
        return row

    def item_index(self, item: str) -> int:
        """The row of ``item`` (added if new)."""
        row = self._items.get(item)
        if row is None:
            row = self._items[item] = len(self._ni)
            self._ni.append(0.0)
            self._si.append(0.0)
        return row

    def terms(self, user: str, item: str) -> tuple[float, float]:
        """``(b_u, b_i)`` (0 for an unknown id)."""
        u, i = self._users.get(user), self._items.get(item)
        b_u = self._su[u] / (self._nu[u] + self.user_prior) if u is not None else 0.0
        b_i = self._si[i] / (self._ni[i] + self.item_prior) if i is not None else 0.0
        return b_u, b_i

    def counts(self, user: str, item: str) -> tuple[int, int]:
        """Events seen of ``user`` and of ``item`` (0 for an unknown id)."""
        u, i = self._users.get(user), self._items.get(item)
        return (int(self._nu[u]) if u is not None else 0,
                int(self._ni[i]) if i is not None else 0)

    def predict(self, user: str, item: str) -> float:
        """``mu + b_u + b_i`` (unclipped)."""
        b_u, b_i = self.terms(user, item)
        return self.mu + b_u + b_i

    def update(self, user: str, item: str, value: float) -> tuple[int, int]:
        """Fold one event into both biases (and the mean); return its (user, item) rows."""
        b_u, b_i = self.terms(user, item)
        u, i = self.user_index(user), self.item_index(item)
        self._nu[u] += 1.0
        self._su[u] += value - self.mu - b_i
        self._ni[i] += 1.0
        self._si[i] += value - self.mu - b_u
        self._count += 1
        self._total += value
        if not self.refits:
            self.mu = self._total / self._count
        return u, i

    def refit(self, history: History) -> None:
        """Solve the regularised biases over ``history``; per-event folding continues from it."""
        users, items, values = history.arrays()
        if not values.size:
            return
        y = values.astype(np.float64)
        nu, ni = len(self._nu), len(self._ni)
        cu = np.bincount(users, minlength=nu).astype(np.float64)
        ci = np.bincount(items, minlength=ni).astype(np.float64)
        mu = float(y.mean())
        b_u = np.zeros(nu)
        b_i = np.zeros(ni)
        for _ in range(self.sweeps):
            b_i = np.bincount(items, y - mu - b_u[users], minlength=ni) / (ci + self.item_prior)
            b_u = np.bincount(users, y - mu - b_i[items], minlength=nu) / (cu + self.user_prior)
        self.mu = mu
        self.refits += 1
        self._nu, self._ni = cu.tolist(), ci.tolist()
        self._su = (b_u * (cu + self.user_prior)).tolist()
        self._si = (b_i * (ci + self.item_prior)).tolist()
