"""Drop events whose ``event_id`` was seen recently (bounded memory, FIFO eviction).

Ids are kept as 64-bit BLAKE2b digests (stable across processes, unlike ``hash``), in a
set for the lookup and a ring for the eviction order: 8 bytes a slot in a snapshot, so the
window travels inside every checkpoint (a million ids: 8 MB). Two distinct ids among a
million collide with probability about 3e-8.

>>> seen = RecentIds(capacity=2)
>>> [seen.check_and_add(x) for x in ["a", "b", "a", "c", "a"]]
[False, False, True, False, False]
>>> again = RecentIds.restore(seen.snapshot())
>>> again.check_and_add("c"), again.check_and_add("b")
(True, False)
"""

from __future__ import annotations

import hashlib
from array import array

__all__ = ["RecentIds"]


_blake2b, _from_bytes = hashlib.blake2b, int.from_bytes


def _digest(event_id: str) -> int:
    data = event_id.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class RecentIds:
    """The last ``capacity`` distinct ids; older ones are forgotten."""

    def __init__(self, capacity: int = 1_000_000):
        if capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity}")
        self.capacity = capacity
        self._ring = array("Q")  # digests in arrival order, circular once full
        self._next = 0  # the slot the next id takes once the ring is full
        self._set: set[int] = set()

    def check_and_add(self, event_id: str) -> bool:
        """Return True if ``event_id`` is a duplicate; otherwise remember it."""
        h = _from_bytes(_blake2b(event_id.encode("utf-8", "surrogatepass"),
                                 digest_size=8).digest(), "little")  # _digest, inlined
        ids = self._set
        if h in ids:
            return True
        ring = self._ring
        if len(ring) < self.capacity:
            ring.append(h)
        else:
            at = self._next
            ids.discard(ring[at])
            ring[at] = h
            self._next = (at + 1) % self.capacity
        ids.add(h)
        return False

    def __len__(self) -> int:
        return len(self._set)

    def _ordered(self) -> array:
        return self._ring[self._next:] + self._ring[: self._next]

    def snapshot(self) -> bytes:
        """The window as bytes (oldest first, 8 bytes an id); see :meth:`restore`."""
        return self._ordered().tobytes()

    @classmethod
    def restore(cls, data: bytes, capacity: int = 1_000_000) -> RecentIds:
        """Resume from :meth:`snapshot`; continuing equals an uninterrupted run.

        With a smaller ``capacity`` than the snapshot's, only the newest ids are kept.
        """
        out = cls(capacity)
        ids = array("Q")
        ids.frombytes(data)
        if len(ids) > capacity:
            ids = ids[len(ids) - capacity:]
        out._ring = ids
        out._set = set(ids)
        return out

    def digest(self) -> str:
        """SHA-256 of :meth:`snapshot` (recorded, and signed, in a version's metadata)."""
        return hashlib.sha256(self.snapshot()).hexdigest()
