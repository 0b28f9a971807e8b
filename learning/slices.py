"""Samples as columns, and the one rule that holds some of them back for evaluation.

:class:`Samples` is the single column type of the slow learner: the fresh samples of a
round, a held-back slice, a backlog and an experiment's regime are all ``Samples`` (user
ids, item ids, values, timestamps). :class:`HoldBack` is the single hold-back rule: every
``k``-th event (counted over the whole stream, 1-based) is held back from training to
score the model on it, the others train. The fine-tune worker, ``lifelong evaluate
--model lifelong`` and the forgetting experiment all split with it.

>>> split = HoldBack(every=3)
>>> fresh, held = Samples(), Samples()
>>> for k in range(7):
...     (held if split.hold() else fresh).append(f"u{k}", "i", float(k), float(k))
>>> fresh.users, held.users
(['u0', 'u1', 'u3', 'u4', 'u6'], ['u2', 'u5'])
>>> (fresh + held).subsample(3).values
[0.0, 4.0, 5.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["HoldBack", "Samples"]


@dataclass
class Samples:
    """Parallel columns: user ids, item ids, values and timestamps (epoch seconds, 0 if none)."""

    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.ts and self.users:
            self.ts = [0.0] * len(self.users)  # held-back slices need no times
        if not len(self.users) == len(self.items) == len(self.values) == len(self.ts):
            raise ValueError("users, items, values and ts must have equal lengths")

    @classmethod
    def of(cls, events: Sequence[object]) -> Samples:
        """The columns of events with ``user_id``, ``item_id``, ``value`` and ``ts``."""
        out = cls()
        for e in events:
            out.append(e.user_id, e.item_id, e.value, e.ts)  # type: ignore[attr-defined]
        return out

    def append(self, user: str, item: str, value: float, ts: float = 0.0) -> None:
        """Add one sample."""
        self.users.append(user)
        self.items.append(item)
        self.values.append(float(value))
        self.ts.append(float(ts))

    def __len__(self) -> int:
        return len(self.users)

    def __add__(self, later: Samples) -> Samples:
        """These samples, then ``later``'s."""
        return Samples(self.users + later.users, self.items + later.items,
                       self.values + later.values, self.ts + later.ts)

    def value_array(self) -> np.ndarray:
        """The values as float32 (what training uses)."""
        return np.asarray(self.values, dtype=np.float32)

    def ts_array(self) -> np.ndarray:
        """The timestamps as float64."""
        return np.asarray(self.ts, dtype=np.float64)

    def columns(self) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
        """``(users, items, values, ts)`` as a fine-tune round takes them."""
        return self.users, self.items, self.value_array(), self.ts_array()

    def subsample(self, max_samples: int) -> Samples:
        """At most ``max_samples`` samples, evenly spaced (deterministic)."""
        n = len(self)
        if n <= max_samples:
            return self
        idx = np.linspace(0, n - 1, max_samples).round().astype(np.int64).tolist()
        return Samples([self.users[k] for k in idx], [self.items[k] for k in idx],
                       [self.values[k] for k in idx], [self.ts[k] for k in idx])


class HoldBack:
    """Hold back every ``every``-th event (1-based count over the stream); train on the rest.

    ``every = round(1 / share)`` for a share of events; :meth:`hold` counts one event.
    The count is state (a restarted process continues it via ``seen``).
    """

    def __init__(self, every: int = 10, seen: int = 0):
        if every < 2:
            raise ValueError(f"every must be >= 2, got {every}")
        self.every = every
        self.seen = seen

    @classmethod
    def share(cls, share: float) -> HoldBack:
        """Hold back about ``share`` of the events (in (0, 0.5])."""
        if not 0.0 < share <= 0.5:
            raise ValueError(f"holdout_share must be in (0, 0.5], got {share}")
        return cls(max(2, round(1.0 / share)))

    def hold(self) -> bool:
        """Count one event; whether it is held back."""
        self.seen += 1
        return self.seen % self.every == 0
