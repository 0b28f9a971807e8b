"""A bounded replay buffer against forgetting: a reservoir stratum plus a recency stratum.

Samples are ``(user_row, item_row, value, ts)`` in preallocated numpy arrays (rows of the
recommender's id tables, not string ids). The long-term stratum is a uniform reservoir over
everything seen (Algorithm R, vectorised per batch: each item's accept/slot draw does not
depend on the buffer's contents, so drawing them all at once and letting the last writer
of a slot win is exactly the sequential algorithm). The recency stratum is a ring of the
last ``recent_window`` samples. :meth:`ReplayBuffer.sample` draws ``recent_share`` of a
batch from the ring and the rest from the reservoir. Memory: ``capacity`` samples in all
(``capacity - recent_window`` in the reservoir), 28 bytes each.

>>> buf = ReplayBuffer(capacity=100, recent_share=0.5, recent_window=10, seed=0)
>>> buf.add_batch(np.arange(500), np.arange(500), np.ones(500), np.arange(500.0))
>>> len(buf), buf.seen
(100, 500)
>>> users, items, values = buf.sample(8)
>>> int((users >= 490).sum()) >= 4  # half of the draws come from the 10 most recent
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["ReplayBuffer"]

_FIELDS = (("user_row", np.int64), ("item_row", np.int64), ("value", np.float32),
           ("ts", np.float64))
ArrayLike = Sequence[float] | np.ndarray


class ReplayBuffer:
    """Reservoir (uniform over all seen) plus ring (last ``recent_window``) of samples.

    ``capacity`` bounds the total; the reservoir holds ``capacity - recent_window``, so each
    sample seen is kept there with probability ``min(1, (capacity - recent_window) / seen)``.
    """

    def __init__(self, capacity: int = 100_000, recent_share: float = 0.3,
                 recent_window: int = 10_000, seed: int = 0):
        if not 0 <= recent_window < capacity:
            raise ValueError(f"need 0 <= recent_window < capacity, got {recent_window}, "
                             f"{capacity}")
        if not 0.0 <= recent_share <= 1.0:
            raise ValueError(f"recent_share must be in [0, 1], got {recent_share}")
        self.capacity = capacity
        self.recent_share = recent_share
        self.recent_window = recent_window
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        k = capacity - recent_window
        self._res = {name: np.zeros(k, dtype=dt) for name, dt in _FIELDS}
        self._ring = {name: np.zeros(recent_window, dtype=dt) for name, dt in _FIELDS}
        self._res_len = 0
        self._ring_len = 0
        self._ring_pos = 0  # next slot to write
        self._seen = 0

    @property
    def seen(self) -> int:
        """Samples ever added."""
        return self._seen

    @property
    def reservoir_len(self) -> int:
        """Samples in the long-term stratum."""
        return self._res_len

    @property
    def recent_len(self) -> int:
        """Samples in the recency stratum."""
        return self._ring_len

    def __len__(self) -> int:
        return self._res_len + self._ring_len

    def add_batch(self, users: ArrayLike, items: ArrayLike, values: ArrayLike,
                  ts: ArrayLike) -> None:
        """Add samples (equal-length arrays); vectorised, one rng draw per sample at most."""
        cols: dict[str, np.ndarray] = {"user_row": np.asarray(users, dtype=np.int64),
                "item_row": np.asarray(items, dtype=np.int64),
                "value": np.asarray(values, dtype=np.float32),
                "ts": np.asarray(ts, dtype=np.float64)}
        n = cols["user_row"].size
        if any(c.shape != (n,) for c in cols.values()):
            raise ValueError("users, items, values and ts must be 1-d and of equal length")
        self._add_reservoir(cols, n)
        self._add_ring(cols, n)
        self._seen += n

    def _add_reservoir(self, cols: dict[str, np.ndarray], n: int) -> None:
        k = self.capacity - self.recent_window
        fill = min(k - self._res_len, n)
        if fill > 0:  # fill phase: take the first items as they come
            for name, col in cols.items():
                self._res[name][self._res_len : self._res_len + fill] = col[:fill]
            self._res_len += fill
        rest = n - fill
        if rest <= 0 or k == 0:
            return
        # item with 1-based position t replaces slot j ~ U[0, t) when j < k
        t = self._seen + fill + 1 + np.arange(rest, dtype=np.int64)
        j = self._rng.integers(0, t)
        take = np.flatnonzero(j < k)
        if take.size == 0:
            return
        slots = j[take]
        # the last writer of a slot wins, as in the sequential algorithm
        _, last = np.unique(slots[::-1], return_index=True)
        keep = take[::-1][last]
        for name, col in cols.items():
            self._res[name][j[keep]] = col[fill + keep]

    def _add_ring(self, cols: dict[str, np.ndarray], n: int) -> None:
        w = self.recent_window
        if w == 0 or n == 0:
            return
        m = min(n, w)
        pos = (self._ring_pos + np.arange(m, dtype=np.int64)) % w
        for name, col in cols.items():
            self._ring[name][pos] = col[n - m :]
        self._ring_pos = (self._ring_pos + m) % w
        self._ring_len = min(w, self._ring_len + m)

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw ``n`` samples with replacement: ``(user_rows, item_rows, values)``.

        ``round(n * recent_share)`` come from the recency stratum (all of them when the
        reservoir is empty, none when the ring is). Empty buffer: empty arrays.
        """
        if n < 0:
            raise ValueError(f"cannot sample {n} items")
        if len(self) == 0:
            n = 0
        n_recent = round(n * self.recent_share) if self._ring_len else 0
        if self._res_len == 0:
            n_recent = n
        out = []
        for name, _ in _FIELDS[:3]:
            out.append(np.empty(n, dtype=self._res[name].dtype))
        if n_recent:
            idx = self._rng.integers(0, self._ring_len, n_recent)
            for o, (name, _) in zip(out, _FIELDS[:3], strict=False):
                o[:n_recent] = self._ring[name][idx]
        if n - n_recent:
            idx = self._rng.integers(0, self._res_len, n - n_recent)
            for o, (name, _) in zip(out, _FIELDS[:3], strict=False):
                o[n_recent:] = self._res[name][idx]
        return out[0], out[1], out[2]

    def drop_rows(self, user_rows: ArrayLike | None = None,
                  item_rows: ArrayLike | None = None) -> int:
        """Remove samples that refer to the given (evicted) rows; return how many went.

        The reservoir is compacted (the freed slots refill from later batches); the ring
        keeps its order, oldest first.
        """
        users = None if user_rows is None else np.asarray(user_rows, np.int64)
        items = None if item_rows is None else np.asarray(item_rows, np.int64)

        def bad(store: dict[str, np.ndarray], order: np.ndarray) -> np.ndarray:
            out = np.zeros(order.size, dtype=bool)
            if users is not None:
                out |= np.isin(store["user_row"][order], users)
            if items is not None:
                out |= np.isin(store["item_row"][order], items)
            return out

        return self._compact(bad, zero=False)

    def _compact(self, bad: Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray], *,
                 zero: bool) -> int:
        """Drop the samples ``bad(store, order)`` marks, keeping order; return how many.

        ``order`` lists a store's live slots oldest first; with ``zero`` the slots past the
        kept samples are cleared (no copy of a dropped sample stays in memory).
        """
        dropped = 0
        for store, length in ((self._res, self._res_len), (self._ring, self._ring_len)):
            if store is self._ring:
                order = (self._ring_pos - length + np.arange(length)) % max(self.recent_window, 1)
            else:
                order = np.arange(length)
            keep = order[~bad(store, order)]
            for col in store.values():
                col[: keep.size] = col[keep]
                if zero:
                    col[keep.size :] = 0
            dropped += length - keep.size
            if store is self._res:
                self._res_len = keep.size
            else:
                self._ring_len = keep.size
                self._ring_pos = keep.size % max(self.recent_window, 1)
        return dropped

    def snapshot(self) -> dict[str, Any]:
        """Configuration, counters, the stored samples (numpy arrays) and the rng state."""
        state: dict[str, Any] = {
            "capacity": self.capacity, "recent_share": self.recent_share,
            "recent_window": self.recent_window, "seed": self.seed, "seen": self._seen,
            "ring_pos": self._ring_pos, "rng": self._rng.bit_generator.state,
        }
        for name, _ in _FIELDS:
            state[f"reservoir.{name}"] = self._res[name][: self._res_len].copy()
            state[f"recent.{name}"] = self._ring[name][: self._ring_len].copy()
        return state

    @classmethod
    def restore(cls, state: dict[str, Any]) -> ReplayBuffer:
        """Resume from :meth:`snapshot`: later adds and samples equal an uninterrupted run."""
        buf = cls(state["capacity"], state["recent_share"], state["recent_window"],
                  state["seed"])
        buf._rng.bit_generator.state = state["rng"]
        buf._seen = int(state["seen"])
        buf._ring_pos = int(state["ring_pos"])
        for name, _ in _FIELDS:
            res, ring = state[f"reservoir.{name}"], state[f"recent.{name}"]
            buf._res[name][: len(res)] = res
            buf._ring[name][: len(ring)] = ring
            buf._res_len, buf._ring_len = len(res), len(ring)
        return buf

    def forget_rows(self, user_rows: ArrayLike) -> int:
        """Erase every sample of the given user rows; return how many went.

        Like :meth:`drop_rows`, and the slots past the kept samples are zeroed too, so no
        copy of an erased sample stays in memory (a snapshot never held them).

        >>> buf = ReplayBuffer(capacity=10, recent_window=4, seed=0)
        >>> buf.add_batch([1, 2, 1, 3], [0, 0, 1, 1], [5.0, 4.0, 3.0, 2.0], [0.0, 1, 2, 3])
        >>> buf.forget_rows([1]), len(buf), int((buf._ring["user_row"] == 1).sum())
        (4, 4, 0)
        """
        rows = np.asarray(user_rows, np.int64)
        return self._compact(lambda store, order: np.isin(store["user_row"][order], rows),
                             zero=True)

    def drop_older_than(self, ts: float) -> int:
        """Retention: erase every sample whose event ``ts`` is before ``ts``; return how many.

        Compacts like :meth:`drop_rows` and zeroes the freed slots (nothing stays in memory).

        >>> buf = ReplayBuffer(capacity=10, recent_window=4, seed=0)
        >>> buf.add_batch([1, 2, 3, 4], [0, 0, 1, 1], [5.0, 4.0, 3.0, 2.0], [0.0, 10, 20, 30])
        >>> buf.drop_older_than(15.0), len(buf), sorted(buf.snapshot()["reservoir.ts"].tolist())
        (4, 4, [20.0, 30.0])
        """
        return self._compact(lambda store, order: ~(store["ts"][order] >= ts), zero=True)
