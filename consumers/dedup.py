"""Drop events whose ``event_id`` was seen recently (bounded memory, FIFO eviction).

>>> seen = RecentIds(capacity=2)
>>> [seen.check_and_add(x) for x in ["a", "b", "a", "c", "a"]]
[False, False, True, False, False]
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RecentIds"]


class RecentIds:
    """The last ``capacity`` distinct ids; older ones are forgotten."""

    def __init__(self, capacity: int = 1_000_000):
        if capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity}")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def check_and_add(self, event_id: str) -> bool:
        """Return True if ``event_id`` is a duplicate; otherwise remember it."""
        if event_id in self._ids:
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._ids)
