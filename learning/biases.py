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

from array import array

import numpy as np

__all__ = ["BiasModel", "History"]


class History:
    """The last ``capacity`` events as compact arrays (user index, item index, value)."""

    def __init__(self, capacity: int = 2_000_000):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        # array.array, not numpy: appending one scalar is much cheaper
        self._u = array("i")
        self._i = array("i")
        self._y = array("f")
        self._n = 0  # events ever added

    def __len__(self) -> int:
        return min(self._n, self.capacity)

    def add(self, user: int, item: int, value: float) -> None:
        """Keep one event (the oldest goes once ``capacity`` are kept)."""
        if self._n < self.capacity:
            self._u.append(user)
            self._i.append(item)
            self._y.append(value)
        else:
            pos = self._n % self.capacity
            self._u[pos], self._i[pos], self._y[pos] = user, item, value
        self._n += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(users, items, values)`` of the kept events (copies)."""
        return (np.array(self._u, dtype=np.int32), np.array(self._i, dtype=np.int32),
                np.array(self._y, dtype=np.float32))


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

    def lookup(self, user: str, item: str) -> tuple[float, float, int, int]:
        """``(b_u, b_i, n_u, n_i)`` in one pass (:meth:`terms` and :meth:`counts`)."""
        _, _, b_u, b_i, n_u, n_i = self.lookup_rows(user, item)
        return b_u, b_i, n_u, n_i

    def lookup_rows(self, user: str, item: str
                    ) -> tuple[int | None, int | None, float, float, int, int]:
        """``(user row, item row, b_u, b_i, n_u, n_i)``; rows None for unknown ids."""
        u, i = self._users.get(user), self._items.get(item)
        if u is None:
            b_u, n_u = 0.0, 0
        else:
            n = self._nu[u]
            b_u, n_u = self._su[u] / (n + self.user_prior), int(n)
        if i is None:
            b_i, n_i = 0.0, 0
        else:
            n = self._ni[i]
            b_i, n_i = self._si[i] / (n + self.item_prior), int(n)
        return u, i, b_u, b_i, n_u, n_i

    def update_rows(self, u: int | None, i: int | None, user: str, item: str, value: float,
                    b_u: float, b_i: float) -> tuple[int, int]:
        """:meth:`update` with the rows and terms :meth:`lookup_rows` gave just before."""
        if u is None:
            u = self.user_index(user)
        if i is None:
            i = self.item_index(item)
        mu = self.mu
        self._nu[u] += 1.0
        self._su[u] += value - mu - b_i
        self._ni[i] += 1.0
        self._si[i] += value - mu - b_u
        self._count += 1
        self._total += value
        if not self.refits:
            self.mu = self._total / self._count
        return u, i

    def update(self, user: str, item: str, value: float,
               terms: tuple[float, float] | None = None) -> tuple[int, int]:
        """Fold one event into both biases (and the mean); return its (user, item) rows.

        ``terms``: ``(b_u, b_i)`` as :meth:`terms` gives them now, when the caller has them.
        """
        b_u, b_i = self.terms(user, item) if terms is None else terms
        return self.update_rows(self._users.get(user), self._items.get(item), user, item, value,
                                b_u, b_i)

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
