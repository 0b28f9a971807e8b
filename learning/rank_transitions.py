"""Decayed "what follows what" links weighted by the time between the two events.

:class:`TimedTransitions` is a :class:`~learning.rank_sequence.CoOccurrence` whose link
from a user's earlier item ``h`` (rated at ``t_h``) to the item just learned (at ``t``)
counts ``exp(-(t - t_h) / time_scale)`` times what it would count in the plain model: two
films rated in one sitting are linked at full strength, two rated months apart hardly at
all (links weaker than ``min_factor`` of full strength are not stored). On MovieTweetings
users rate in bursts, and a transition across a long gap says little about what the next
film of a burst will be. Scoring is the plain model's (``sum_k position_decay ** k *
P(j | h_k)`` over the user's last items).

>>> seq = TimedTransitions(history=2, time_scale=60.0, decay=1.0)
>>> for user, item, ts in [("a", 0, 0.0), ("a", 1, 10.0), ("b", 0, 0.0), ("b", 2, 1e6)]:
...     seq.learn_one(user, item, ts=ts)
>>> sorted(seq.neighbours(0))          # b's 0 -> 2 came 11 days later: not linked
[1]
>>> seq.learn_one("c", 0, ts=2e6); seq.score_items("c").round(3).tolist()
[0.0, 1.0, 0.0]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import numpy as np

from learning.rank_sequence import CoOccurrence

__all__ = ["TimedTransitions"]


class _Recent(deque):  # type: ignore[type-arg]
    """A user's last items and, in ``times``, their event times.

    One object, so erasing a user's ``_recent`` entry erases the times too; pickling
    rebuilds it as ``_Recent(items, maxlen)`` and then restores ``times``.
    """

    def __init__(self, iterable: Iterable[int] = (), maxlen: int | None = None):
        super().__init__(iterable, maxlen)
        self.times: deque[float] = deque(maxlen=maxlen)


class TimedTransitions(CoOccurrence):
    """:class:`CoOccurrence` with each link faded by the time gap between its two events."""

    def __init__(self, history: int = 2, *, time_scale: float = 86400.0,
                 symmetric: bool = False, decay: float = 0.9995, position_decay: float = 0.3,
                 max_neighbours: int = 200, min_factor: float = 1e-4):
        super().__init__(history, symmetric=symmetric, decay=decay,
                         position_decay=position_decay, max_neighbours=max_neighbours)
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        if not 0.0 <= min_factor < 1.0:
            raise ValueError(f"min_factor must be in [0, 1), got {min_factor}")
        self.time_scale = float(time_scale)
        self.min_factor = float(min_factor)

    def _new_history(self) -> deque[int]:
        return _Recent(maxlen=self.history)

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """Link ``item`` with the user's last items (faded by the time since each)."""
        recent = self._advance(user, item)
        times = recent.times  # type: ignore[attr-defined]
        if recent:
            scale = self.time_scale
            factors = np.array([math.exp(-max(ts - at, 0.0) / scale) for at in times])
            self._table.learn(np.fromiter(recent, np.int64, len(recent)), item,
                              weight * self._scale, self.position_decay, factors,
                              self.min_factor, symmetric=self.symmetric)
        recent.append(item)
        times.append(ts)
