"""Sparse item-to-item link rows in flat arrays: one pool, so learning is one kernel call.

:class:`LinkTable` keeps, for every row ``a``, the links ``a -> b`` with their weights in a
region ``start[a] .. start[a] + n[a]`` of two pool arrays (``keys``, ``values``), the
region's capacity (doubled, by moving the row to the pool's end, when full) and the row's
total weight. :func:`learn` adds one event's links (the user's last items to the item just
learned) and keeps each row's ``max_neighbours`` strongest links once it holds more than
twice as many; :func:`terms` lists the weighted links of a user's last items for scoring.
Both are numba kernels (:mod:`learning.jit`); :meth:`LinkTable.learn_numpy` and
:meth:`LinkTable.terms_numpy` are the numpy reference (``LIFELONG_NUMBA=0``), tested equal
to them bit for bit: the arithmetic (additions in the same order, the stable sort of a
trimmed row, its total summed left to right) is the same.

A pickle holds the rows compacted (no free space, no moved-out regions).

>>> table = LinkTable(max_neighbours=2)
>>> table.reserve(3, 0)                  # rows 0 .. 2
>>> table.learn(np.array([0, 1]), 2, 1.0, 0.5, np.ones(2), 0.0, symmetric=False)
>>> table.row(0), table.row(1)     # 1 was the most recent: full weight; 0 half
({2: 0.5}, {2: 1.0})
>>> keys, values = table.terms(np.array([0, 1]), 1.0)  # last item first, weight / total
>>> keys.tolist(), values.tolist()
([2, 2], [1.0, 1.0])
"""

from __future__ import annotations

import numpy as np

from learning.jit import ENABLED, jit

__all__ = ["ENABLED", "LinkTable", "learn", "terms"]

_FIRST = 8  # a new row's capacity


@jit
def _link(keys, values, idx, total, used, a, b, value, max_neighbours):  # type: ignore[no-untyped-def]
    """``a -> b`` gains ``value`` (a new slot if absent); trim ``a`` past 2x max_neighbours."""
    start, cap, n = idx[a, 0], idx[a, 1], idx[a, 2]
    for i in range(start, start + n):
        if keys[i] == b:
            values[i] += value
            total[a] += value
            return
    if n == cap:  # move the row to the pool's end with room for twice as many
        new_cap = _FIRST
        while new_cap <= n:
            new_cap *= 2
        to = used[0]
        keys[to:to + n] = keys[start:start + n]
        values[to:to + n] = values[start:start + n]
        used[0] = to + new_cap
        idx[a, 0] = to
        idx[a, 1] = new_cap
        start = to
    keys[start + n] = b
    values[start + n] = value
    n += 1
    idx[a, 2] = n
    total[a] += value
    if n > 2 * max_neighbours:
        order = np.argsort(-values[start:start + n], kind="mergesort")[:max_neighbours]
        kept_k = keys[start:start + n][order]
        kept_v = values[start:start + n][order]
        s = 0.0
        for i in range(max_neighbours):
            keys[start + i] = kept_k[i]
            values[start + i] = kept_v[i]
            s += kept_v[i]
        idx[a, 2] = max_neighbours
        total[a] = s


@jit
def learn(keys, values, idx, total, used, recent, item, strength, position_decay, factors,
          min_factor, symmetric, max_neighbours):  # type: ignore[no-untyped-def]
    """Link ``item`` with ``recent`` (oldest first), the most recent at ``strength``.

    The link from ``recent[-1 - k]`` weighs ``strength * position_decay ** k`` (multiplied
    step by step) times ``factors[-1 - k]``, and is made only if that factor exceeds
    ``min_factor`` and the item differs; ``symmetric``: ``item -> h`` as well.
    """
    s = strength
    for k in range(len(recent) - 1, -1, -1):
        prev = recent[k]
        factor = factors[k]
        if prev != item and factor > min_factor:
            _link(keys, values, idx, total, used, prev, item, s * factor, max_neighbours)
            if symmetric:
                _link(keys, values, idx, total, used, item, prev, s * factor, max_neighbours)
        s *= position_decay


@jit
def terms(keys, values, idx, total, recent, position_decay):  # type: ignore[no-untyped-def]
    """The links of ``recent`` (most recent first), each row's weights times ``w / total``."""
    size = 0
    for prev in recent:
        size += idx[prev, 2]
    out_k = np.empty(size, dtype=np.int64)
    out_v = np.empty(size)
    weight = 1.0
    m = 0
    for k in range(len(recent) - 1, -1, -1):
        prev = recent[k]
        start, n = idx[prev, 0], idx[prev, 2]
        if n:
            scale = weight / total[prev]
            for i in range(start, start + n):
                out_k[m] = keys[i]
                out_v[m] = values[i] * scale
                m += 1
        weight *= position_decay
    return out_k, out_v


class LinkTable:
    """Link rows ``a -> {b: weight}`` in one pool of slots (module doc).

    ``max_neighbours``: the links a row keeps when it is trimmed (at twice as many).
    """

    def __init__(self, max_neighbours: int = 200):
        self.max_neighbours = max_neighbours
        self.idx = np.zeros((0, 3), dtype=np.int64)  # per row: start, capacity, length
        self.total = np.zeros(0)
        self.keys = np.zeros(1024, dtype=np.int64)
        self.values = np.zeros(1024)
        self.used = np.zeros(1, dtype=np.int64)  # the pool's end (an array: kernels move it)
        cap = _FIRST
        while cap <= 2 * max_neighbours:  # a row holds at most 2 * max_neighbours + 1 links
            cap *= 2
        self._max_cap = cap  # the largest region a row moves to

    def __getstate__(self) -> dict[str, object]:
        """The rows compacted, each region exactly its links."""
        n = self.idx[:, 2].copy()
        starts = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
        take = np.concatenate([np.arange(s, s + k) for s, k in
                               zip(self.idx[:, 0].tolist(), n.tolist(), strict=True)]
                              + [np.zeros(0, dtype=np.int64)]).astype(np.int64)
        state = dict(self.__dict__)
        state["idx"] = np.stack([starts, n, n], axis=1) if len(n) else self.idx.copy()
        state["keys"] = self.keys[take]
        state["values"] = self.values[take]
        state["used"] = np.array([len(take)], dtype=np.int64)
        return state

    def reserve(self, rows: int, slots: int) -> None:
        """Room for rows ``0 .. rows - 1`` and ``slots`` more slots at the pool's end."""
        if rows > len(self.idx):
            size = max(rows, 2 * len(self.idx))
            idx = np.zeros((size, 3), dtype=np.int64)
            idx[: len(self.idx)] = self.idx
            total = np.zeros(size)
            total[: len(self.total)] = self.total
            self.idx, self.total = idx, total
        need = int(self.used[0]) + slots
        if need > len(self.keys):
            size = max(need, 2 * len(self.keys))
            keys = np.zeros(size, dtype=np.int64)
            keys[: len(self.keys)] = self.keys
            values = np.zeros(size)
            values[: len(self.values)] = self.values
            self.keys, self.values = keys, values

    def learn(self, recent: np.ndarray, item: int, strength: float, position_decay: float,
              factors: np.ndarray, min_factor: float, *, symmetric: bool) -> None:
        """:func:`learn` on this table (``LIFELONG_NUMBA=0``: :meth:`learn_numpy`).

        Rows ``recent`` and ``item`` must exist (:meth:`reserve`).
        """
        need = int(self.used[0]) + 2 * len(recent) * self._max_cap  # a link moves its row once
        if need > len(self.keys):
            self.reserve(len(self.idx), need - int(self.used[0]))
        if ENABLED:
            learn(self.keys, self.values, self.idx, self.total, self.used, recent, item,
                  strength, position_decay, factors, min_factor, symmetric,
                  self.max_neighbours)
        else:
            self.learn_numpy(recent, item, strength, position_decay, factors, min_factor,
                             symmetric=symmetric)

    def terms(self, recent: np.ndarray, position_decay: float) -> tuple[np.ndarray, np.ndarray]:
        """:func:`terms` on this table (``LIFELONG_NUMBA=0``: :meth:`terms_numpy`)."""
        if ENABLED:
            return terms(self.keys, self.values, self.idx, self.total, recent,  # type: ignore[no-any-return]
                         position_decay)
        return self.terms_numpy(recent, position_decay)

    # the numpy reference ----------------------------------------------------------------
    def learn_numpy(self, recent: np.ndarray, item: int, strength: float,
                    position_decay: float, factors: np.ndarray, min_factor: float, *,
                    symmetric: bool) -> None:
        """:func:`learn` with numpy (the reference; :meth:`reserve` first)."""
        s = strength
        for prev, factor in zip(recent[::-1].tolist(), factors[::-1].tolist(), strict=True):
            if prev != item and factor > min_factor:
                self._link_numpy(prev, item, s * factor)
                if symmetric:
                    self._link_numpy(item, prev, s * factor)
            s *= position_decay

    def _link_numpy(self, a: int, b: int, value: float) -> None:
        start, cap, n = self.idx[a].tolist()
        at = np.flatnonzero(self.keys[start:start + n] == b)
        self.total[a] += value
        if len(at):
            self.values[start + at[0]] += value
            return
        if n == cap:
            to = int(self.used[0])
            self.keys[to:to + n] = self.keys[start:start + n]
            self.values[to:to + n] = self.values[start:start + n]
            start = to
            cap = _FIRST
            while cap <= n:
                cap *= 2
            self.used[0] = to + cap
        self.keys[start + n] = b
        self.values[start + n] = value
        n += 1
        if n > 2 * self.max_neighbours:
            m = self.max_neighbours
            order = np.argsort(-self.values[start:start + n], kind="stable")[:m]
            self.keys[start:start + m] = self.keys[start:start + n][order]
            self.values[start:start + m] = self.values[start:start + n][order]
            n = m
            self.total[a] = sum(self.values[start:start + m].tolist())
        self.idx[a] = (start, cap, n)

    def terms_numpy(self, recent: np.ndarray, position_decay: float
                    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`terms` with numpy (the reference)."""
        keys, values = [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
        weight = 1.0
        for prev in recent[::-1].tolist():
            start, _, n = self.idx[prev].tolist()
            if n:
                keys.append(self.keys[start:start + n])
                values.append(self.values[start:start + n] * (weight / self.total[prev]))
            weight *= position_decay
        return np.concatenate(keys), np.concatenate(values)

    # reading -----------------------------------------------------------------------------
    def row(self, a: int) -> dict[int, float]:
        """Row ``a``'s links (key -> stored weight), in slot order."""
        if a >= len(self.idx):
            return {}
        start, _, n = self.idx[a].tolist()
        return dict(zip(self.keys[start:start + n].tolist(),
                        self.values[start:start + n].tolist(), strict=True))

    def slots(self, a: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``a``'s keys and weights (views into the pool; empty if none)."""
        if a >= len(self.idx):
            return self.keys[:0], self.values[:0]
        start, _, n = self.idx[a].tolist()
        return self.keys[start:start + n], self.values[start:start + n]

    def scale_down(self, scale: float) -> None:
        """Divide every weight and total by ``scale`` (a renormalisation)."""
        self.values[: int(self.used[0])] /= scale
        self.total /= scale

    def put(self, a: int, keys: np.ndarray, values: np.ndarray, total: float) -> None:
        """Set row ``a`` (a whole row at once: converting an old checkpoint)."""
        n = len(keys)
        cap = max(n, _FIRST)
        self.reserve(a + 1, cap)
        to = int(self.used[0])
        self.keys[to:to + n] = keys
        self.values[to:to + n] = values
        self.used[0] = to + cap
        self.idx[a] = (to, cap, n)
        self.total[a] = total
