"""Decayed co-occurrence / "what follows what": items near the user's last few items.

Every interaction ``(user, item)`` links ``item`` to each of the user's last ``history``
items ``h`` (the most recent first, weighted ``position_decay ** k``); with
``symmetric=False`` only ``h -> item`` (what followed ``h``), else both ways. Link weights
fade by ``decay`` per event (stored times a growing scale, so the decay is O(1)), and each
item keeps at most ``max_neighbours`` links (the weakest are dropped when it holds twice as
many), so memory is bounded by ``items * 2 * max_neighbours``. The links live in flat
arrays (:class:`~learning.rank_links.LinkTable`: one pool of slots, a region per item), so
learning an event is one compiled call and scoring adds them into the dense vector without
converting anything. Checkpoints of the older layout (a dict of :class:`_Row`) are converted
when they load.

A user's score for item ``j`` is ``sum_k position_decay ** k * P(j | h_k)``, where
``P(j | h)`` is ``h``'s link to ``j`` over all of ``h``'s links: one sparse row per
history item, added into a dense vector.

>>> seq = CoOccurrence(history=2, symmetric=False, decay=1.0)
>>> for user, item in [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0), ("c", 2)]:
...     seq.learn_one(user, item)
>>> seq.score_items("c").round(3).tolist()   # c: 0 then 2; after 0 came 1 twice, 2 once
[0.0, 0.467, 0.233]
>>> seq.score_items("d").tolist()            # unknown user: nothing personal
[0.0, 0.0, 0.0]
>>> seq.learn_one("d", 0); seq.score_items("d").round(3).tolist()
[0.0, 0.667, 0.333]
"""

from __future__ import annotations

from collections import deque

import numpy as np

from learning.rank_links import LinkTable

__all__ = ["CoOccurrence"]

_RENORM_AT = 1e150
_NO_KEYS = np.empty(0, dtype=np.int64)
_NO_VALUES = np.empty(0)


class _Row:
    """One item's links: neighbour rows and weights in slots ``0 .. n - 1``.

    The round-5 storage of :class:`CoOccurrence` (kept to load its checkpoints) and of
    :class:`~learning.rank_knn.HistoryKNN`.
    """

    __slots__ = ("keys", "n", "slot", "values")

    def __init__(self) -> None:
        self.keys = np.zeros(8, dtype=np.int64)
        self.values = np.zeros(8)
        self.slot: dict[int, int] = {}
        self.n = 0

    def add(self, key: int, value: float) -> None:
        at = self.slot.get(key)
        if at is not None:
            self.values[at] += value
            return
        at = self.n
        if at == len(self.keys):
            self.keys = np.concatenate([self.keys, np.zeros(at, dtype=np.int64)])
            self.values = np.concatenate([self.values, np.zeros(at)])
        self.keys[at] = key
        self.values[at] = value
        self.slot[key] = at
        self.n = at + 1

    def keep_strongest(self, m: int) -> float:
        """Keep the ``m`` largest weights (ties: the older slot first); return their sum."""
        order = np.argsort(-self.values[: self.n], kind="stable")[:m]
        self.keys = self.keys[order].copy()
        self.values = self.values[order].copy()
        self.n = len(order)
        self.slot = {int(k): i for i, k in enumerate(self.keys.tolist())}
        return sum(self.values.tolist())


class CoOccurrence:
    """Sparse decayed item-to-item links from users' recent histories (see module doc)."""

    def __init__(self, history: int = 5, *, symmetric: bool = True, decay: float = 0.9995,
                 position_decay: float = 0.7, max_neighbours: int = 200):
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        if not 0.0 < position_decay <= 1.0:
            raise ValueError(f"position_decay must be in (0, 1], got {position_decay}")
        if max_neighbours < 1:
            raise ValueError(f"max_neighbours must be >= 1, got {max_neighbours}")
        self.history = history
        self.symmetric = symmetric
        self.decay = decay
        self.position_decay = position_decay
        self.max_neighbours = max_neighbours
        self.n_items = 0
        self._table = LinkTable(max_neighbours)
        self._recent: dict[str, deque[int]] = {}
        self._scale = 1.0

    def __setstate__(self, state: dict[str, object]) -> None:
        """Load a checkpoint; one of the round-5 layout (``_links``: a dict of rows) converts."""
        links = state.pop("_links", None)
        totals = state.pop("_totals", None)
        self.__dict__.update(state)
        if links is not None:
            table = self._table = LinkTable(self.max_neighbours)
            assert isinstance(links, dict) and isinstance(totals, dict)
            for a, row in links.items():
                table.put(a, row.keys[: row.n], row.values[: row.n], totals[a])
            table.reserve(self.n_items, 0)

    def _advance(self, user: str, item: int) -> deque[int]:
        """One event's clock (the fade of every link) and ``user``'s history, made if new."""
        if item >= self.n_items:
            self.n_items = item + 1
            self._table.reserve(self.n_items, 0)
        if self.decay < 1.0:
            self._scale /= self.decay
            if self._scale > _RENORM_AT:
                self._renormalise()
        recent = self._recent.get(user)
        if recent is None:
            recent = self._recent[user] = self._new_history()
        return recent

    def _new_history(self) -> deque[int]:
        return deque(maxlen=self.history)

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """Link ``item`` with the user's last items, then append it to their history."""
        recent = self._advance(user, item)
        if recent:
            self._table.learn(np.fromiter(recent, np.int64, len(recent)), item,
                              weight * self._scale, self.position_decay, _ones(len(recent)),
                              0.0, symmetric=self.symmetric)
        recent.append(item)

    def _renormalise(self) -> None:
        self._table.scale_down(self._scale)
        self._scale = 1.0

    def score_items(self, user: str) -> np.ndarray:
        """Sum of ``P(item | h)`` over the user's recent items ``h`` (zeros if none)."""
        scores = np.zeros(self.n_items)
        weight = 1.0
        table = self._table
        for prev in reversed(self._recent.get(user, ())):
            keys, values = table.slots(prev)
            if len(keys):
                scores[keys] += values * (weight / table.total[prev])
            weight *= self.position_decay
        return scores

    def score_terms(self, user: str) -> tuple[np.ndarray, np.ndarray]:
        """The rows and values :meth:`score_items` adds up, in its order (rows may repeat).

        >>> seq = CoOccurrence(history=2, symmetric=False, decay=1.0)
        >>> for user, item in [("a", 0), ("a", 1), ("b", 0), ("b", 2)]:
        ...     seq.learn_one(user, item)
        >>> keys, values = seq.score_terms("a")
        >>> dense = np.zeros(3); np.add.at(dense, keys, values)
        >>> dense.tolist() == seq.score_items("a").tolist()
        True
        """
        recent = self._recent.get(user)
        if not recent:
            return _NO_KEYS, _NO_VALUES
        return self._table.terms(np.fromiter(recent, np.int64, len(recent)),
                                 self.position_decay)

    def kernel_args(self, user: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                               np.ndarray, float]:
        """What :func:`learning.rank_links.terms` takes for ``user`` (pool, rows, history)."""
        recent = self._recent.get(user)
        table = self._table
        return (table.keys, table.values, table.idx, table.total,
                _NO_KEYS if not recent else np.fromiter(recent, np.int64, len(recent)),
                self.position_decay)

    def support(self, user: str) -> np.ndarray:
        """Rows ``score_items(user)`` may give a non-zero score, ascending (no repeats)."""
        keys = [k for prev in self._recent.get(user, ())
                if len(k := self._table.slots(prev)[0])]
        if not keys:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(keys))

    def neighbours(self, item: int) -> dict[int, float]:
        """``item``'s links (neighbour row -> weight, in current units), strongest kept."""
        keys, values = self._table.slots(item)
        return dict(zip(keys.tolist(), (values / self._scale).tolist(), strict=True))

    def recent(self, user: str) -> list[int]:
        """The user's last ``history`` rows, oldest first."""
        return list(self._recent.get(user, ()))


_ONES: dict[int, np.ndarray] = {}


def _ones(n: int) -> np.ndarray:
    """An array of ``n`` ones (the untimed links' time factors; shared, never written)."""
    ones = _ONES.get(n)
    if ones is None:
        ones = _ONES[n] = np.ones(n)
    return ones
