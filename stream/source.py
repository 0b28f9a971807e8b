"""The one ``Source`` protocol that a Kafka topic and a file both satisfy.

The learner worker reads :class:`Record` batches from a source, so the exact same code
runs in production (Kafka), in evaluation (a file) and in tests (a list).

>>> src = ListSource([b'{"a":1}', b'{"b":2}'], batch_size=1)
>>> [r.offset for r in src.poll()], [r.offset for r in src.poll()], src.poll(), src.exhausted
([0], [1], [], True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

import msgspec

__all__ = ["DeadLetters", "ListDeadLetters", "ListSource", "Record", "Source"]


class Record(msgspec.Struct, frozen=True):
    """One raw record and where it came from.

    For Kafka ``topic``/``partition``/``offset`` are the broker's; for a file ``topic`` is
    the path, ``partition`` is 0 and ``offset`` the 0-based data row. ``timestamp`` is the
    broker's append time in epoch seconds (``None`` for files).
    """

    value: bytes
    topic: str
    partition: int
    offset: int
    timestamp: float | None = None
    key: bytes | None = None


@runtime_checkable
class Source(Protocol):
    """A stream of raw records, read in batches."""

    def poll(self, timeout: float = 1.0) -> list[Record]:
        """Return the next records; an empty list means none arrived within ``timeout``."""
        ...

    def commit(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Record that everything before ``positions[(topic, partition)]`` is processed."""
        ...

    @property
    def exhausted(self) -> bool:
        """True once a finite source has nothing left (a Kafka topic never is)."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class DeadLetters(Protocol):
    """Where rejected records go (the ``events.dlq`` topic, or a list in evaluation)."""

    def put(self, record: Record, reason: str) -> None:
        """Keep ``record`` with the ``reason`` it was refused."""
        ...

    def flush(self) -> None:
        """Make every record put so far durable."""
        ...


class ListSource:
    """A finite in-memory source; offsets are list indices. Useful in tests and examples."""

    def __init__(self, values: Iterable[bytes], topic: str = "memory", batch_size: int = 500):
        self.topic = topic
        self.batch_size = batch_size
        self._values = list(values)
        self._next = 0
        self.committed: dict[tuple[str, int], int] = {}

    def poll(self, timeout: float = 1.0) -> list[Record]:
        """Return up to ``batch_size`` records."""
        end = min(self._next + self.batch_size, len(self._values))
        batch = [Record(v, self.topic, 0, i) for i, v in enumerate(self._values[self._next:end],
                                                                    self._next)]
        self._next = end
        return batch

    def commit(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Remember the committed positions."""
        self.committed.update(positions)

    @property
    def exhausted(self) -> bool:
        """True when every value has been returned."""
        return self._next >= len(self._values)

    def close(self) -> None:
        """Nothing to release."""


class ListDeadLetters:
    """Dead letters kept in memory: ``(record, reason)`` pairs."""

    def __init__(self) -> None:
        self.items: list[tuple[Record, str]] = []

    def put(self, record: Record, reason: str) -> None:
        """Append the record and its reason."""
        self.items.append((record, reason))

    def flush(self) -> None:
        """Nothing to flush."""
