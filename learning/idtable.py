"""Growable string id -> dense row tables for embedding models, with time-to-live eviction.

Every id gets its own row (a dict, so no hash collisions). New ids take a freed row if
there is one (the smallest first), else the next row past the high-water mark ``rows``,
which only grows: an embedding table sized to ``rows`` covers every live id. Ids not seen
for ``ttl_seconds`` are evicted by :meth:`IdTable.evict`; their rows are reused, so the
caller must reset those embedding rows: :attr:`IdTable.last_new_rows` lists the rows that
the last :meth:`IdTable.lookup` (re)assigned.

>>> t = IdTable(ttl_seconds=10.0)
>>> t.lookup(["a", "b", "a"], now=0.0).tolist(), t.size, t.rows
([0, 1, 0], 2, 2)
>>> _ = t.lookup(["b"], now=8.0)
>>> t.evict(now=12.0).tolist()
[0]
>>> t.lookup(["c", "zzz"], now=12.0, add=False).tolist()
[-1, -1]
>>> t.lookup(["c"], now=12.0).tolist(), t.last_new_rows.tolist(), t.id_of(0)
([0], [0], 'c')
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np

__all__ = ["IdTable"]


class IdTable:
    """Map string ids to dense int64 rows; rows of ids idle past ``ttl_seconds`` are reused.

    ``capacity_hint`` only sizes the first allocation of the last-seen array (it doubles as
    needed). ``ttl_seconds=None`` never evicts. Memory is bounded by the peak number of live
    ids: ``rows`` never exceeds it.
    """

    def __init__(self, capacity_hint: int = 1024, ttl_seconds: float | None = None):
        if capacity_hint < 1:
            raise ValueError(f"capacity_hint must be positive, got {capacity_hint}")
        if ttl_seconds is not None and not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be positive or None, got {ttl_seconds}")
        self.capacity_hint = capacity_hint
        self.ttl_seconds = ttl_seconds
        self._index: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._free: list[int] = []
        self._last_seen = np.full(capacity_hint, -math.inf)
        self.last_new_rows = np.empty(0, dtype=np.int64)
        self._all_known = True

    @property
    def size(self) -> int:
        """Number of live ids."""
        return len(self._index)

    @property
    def rows(self) -> int:
        """High-water mark: every row handed out so far is below it (size tables to it)."""
        return len(self._ids)

    @property
    def last_seen(self) -> np.ndarray:
        """Last-seen time per row (``-inf`` for free rows), a read-only view."""
        view = self._last_seen[: self.rows]
        view.flags.writeable = False
        return view

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return self.size

    def id_of(self, row: int) -> str | None:
        """The id living in ``row``, or None when the row is free."""
        return self._ids[row] if 0 <= row < len(self._ids) else None

    def lookup(self, ids: Sequence[str], now: float, *, add: bool = True) -> np.ndarray:
        """Rows of ``ids`` (int64); unknown ids are added, or give -1 when ``add`` is False.

        With ``add`` (learning) every id is touched (last seen = ``now``); without it (serving)
        the table is only read. :attr:`last_new_rows` is set to the rows assigned by this
        call, in order of first appearance.
        """
        n = len(ids)
        index = self._index
        rows: np.ndarray | None = None
        if self._all_known:  # fast path while batches bring no new ids
            try:
                rows = np.fromiter(map(index.__getitem__, ids), dtype=np.int64, count=n)
            except KeyError:
                rows = None
        if rows is None:
            rows = np.fromiter(map(index.get, ids, repeat(-1, n)), dtype=np.int64, count=n)
        missing = np.flatnonzero(rows < 0)
        self._all_known = missing.size == 0
        self.last_new_rows = np.empty(0, dtype=np.int64)
        if add and missing.size:
            keys = [ids[k] for k in missing.tolist()]
            self.last_new_rows = self._assign(list(dict.fromkeys(keys)))
            rows[missing] = np.fromiter(map(index.__getitem__, keys), dtype=np.int64,
                                        count=len(keys))
        if add:
            self._last_seen[rows] = now
        return rows

    def _assign(self, keys: list[str]) -> np.ndarray:
        """Give distinct new ``keys`` rows: freed ones (smallest first), then new ones."""
        reused = [heapq.heappop(self._free) for _ in range(min(len(keys), len(self._free)))]
        for row, key in zip(reused, keys, strict=False):
            self._ids[row] = key
        start = len(self._ids)
        self._ids.extend(keys[len(reused) :])
        rows = reused + list(range(start, len(self._ids)))
        self._index.update(zip(keys, rows, strict=True))
        if len(self._ids) > self._last_seen.size:
            grown = np.full(max(2 * self._last_seen.size, len(self._ids)), -math.inf)
            grown[: self._last_seen.size] = self._last_seen
            self._last_seen = grown
        return np.asarray(rows, dtype=np.int64)

    def evict(self, now: float) -> np.ndarray:
        """Free the rows of ids not seen since ``now - ttl_seconds``; return them, sorted."""
        if self.ttl_seconds is None or not self._index:
            return np.empty(0, dtype=np.int64)
        stale = np.flatnonzero(self._last_seen[: self.rows] < now - self.ttl_seconds)
        stale = stale[np.isfinite(self._last_seen[stale])]
        for row in stale.tolist():
            key = self._ids[row]
            assert key is not None
            del self._index[key]
            self._ids[row] = None
            self._last_seen[row] = -math.inf
            heapq.heappush(self._free, row)
        return stale.astype(np.int64)

    def snapshot(self) -> dict[str, Any]:
        """The configuration and state, for :meth:`restore`, which resumes exactly here.

        ``ids`` is a JSON-ready list (None for free rows), ``last_seen`` a float64 array.
        """
        return {"capacity_hint": self.capacity_hint, "ttl_seconds": self.ttl_seconds,
                "ids": list(self._ids), "last_seen": self._last_seen[: self.rows].copy()}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> IdTable:
        """Rebuild a table from :meth:`snapshot`; lookups continue as in the original.

        >>> t = IdTable(); _ = t.lookup(["x", "y"], now=1.0)
        >>> IdTable.restore(t.snapshot()).lookup(["y", "z"], now=2.0).tolist()
        [1, 2]
        """
        table = cls(state["capacity_hint"], state["ttl_seconds"])
        ids: list[str | None] = list(state["ids"])
        seen = np.asarray(state["last_seen"], dtype=np.float64)
        if len(ids) != seen.size:
            raise ValueError(f"id table snapshot has {len(ids)} ids but {seen.size} times")
        table._ids = ids
        table._index = {key: row for row, key in enumerate(ids) if key is not None}
        table._free = [row for row, key in enumerate(ids) if key is None]
        heapq.heapify(table._free)
        table._last_seen = np.full(max(table.capacity_hint, seen.size), -math.inf)
        table._last_seen[: seen.size] = seen
        return table

    def forget(self, key: str) -> int:
        """Free ``key``'s row now (erasure); return it, or -1 if ``key`` is unknown.

        As with :meth:`evict`, the caller resets that embedding row (and drops the replay
        samples that point at it, :meth:`learning.replay.ReplayBuffer.forget_rows`).

        >>> t = IdTable(); _ = t.lookup(["a", "b"], now=0.0)
        >>> t.forget("a"), t.forget("a"), "a" in t, t.lookup(["c"], now=1.0).tolist()
        (0, -1, False, [0])
        """
        row = self._index.pop(key, -1)
        if row >= 0:
            self._ids[row] = None
            self._last_seen[row] = -math.inf
            heapq.heappush(self._free, row)
            self._all_known = False
        return row

    def forget_user(self, user: str) -> int:
        """:class:`learning.erasure.Forgettable`: 1 if ``user`` held a row, else 0."""
        return int(self.forget(user) >= 0)


