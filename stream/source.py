"""The one ``Source`` protocol that a Kafka topic and a file both satisfy.

The learner worker reads :class:`Record` batches from a source, so the exact same code
runs in production (Kafka), in evaluation (a file) and in tests (a list).

>>> src = ListSource([b'{"a":1}', b'{"b":2}'], batch_size=1)
>>> [r.offset for r in src.poll()], [r.offset for r in src.poll()], src.poll(), src.exhausted
([0], [1], [], True)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import msgspec

__all__ = ["BatchSource", "DeadLetters", "IterSource", "ListDeadLetters", "ListSource", "Record",
           "Source"]


_END = object()  # end of an IterSource's values (a value may be None: a tombstone)


class Record(msgspec.Struct, frozen=True, gc=False):
    """One raw record and where it came from.

    Not tracked by the garbage collector (``gc=False``: bytes, strings and numbers cannot
    form a cycle), so a batch of records does not trigger collections over the learner's
    tables.

    For Kafka ``topic``/``partition``/``offset`` are the broker's; for a file ``topic`` is
    the path, ``partition`` is 0 and ``offset`` the 0-based data row. ``timestamp`` is the
    broker's append time in epoch seconds (``None`` for files).
    """

    value: bytes | None  # None: a Kafka tombstone
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


class IterSource:
    """Base of the finite sources: batches over an iterator of raw values.

    Subclasses implement :meth:`_open`, returning the values from ``start_offset`` on; it
    is called at the first poll (so expensive preparation waits until then). Offsets
    count from ``start_offset``; pass :attr:`position` as ``start_offset`` to resume.
    """

    def __init__(self, topic: str, batch_size: int = 1000, start_offset: int = 0):
        if batch_size < 1 or start_offset < 0:
            raise ValueError(f"{topic}: need batch_size >= 1 and start_offset >= 0")
        self.topic = topic
        self.batch_size = batch_size
        self.start_offset = start_offset
        self._values: Iterator[bytes] | None = None
        self._peek: Any = _END
        self._next = start_offset
        self._closed = False
        self.committed: dict[tuple[str, int], int] = {}

    def _open(self) -> Iterator[bytes]:
        raise NotImplementedError

    def poll(self, timeout: float = 1.0) -> list[Record]:
        """Return up to ``batch_size`` records (never waits, so ``timeout`` is unused)."""
        if self._values is None and not self._closed:
            self._values = self._open()
            self._peek = next(self._values, _END)
        out: list[Record] = []
        while self._peek is not _END and len(out) < self.batch_size:
            out.append(Record(self._peek, self.topic, 0, self._next))
            self._next += 1
            self._peek = next(self._values, _END)  # type: ignore[arg-type]
        if self._peek is _END:
            self.close()
        return out

    def commit(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Remember the committed positions (``committed``)."""
        self.committed.update(positions)

    @property
    def position(self) -> int:
        """The offset of the next record to return."""
        return self._next

    @property
    def exhausted(self) -> bool:
        """True once every value has been returned (or the source was closed)."""
        return self._closed

    def close(self) -> None:
        """Stop; later polls return nothing."""
        self._closed = True
        self._values, self._peek = iter(()), _END


class ListSource(IterSource):
    """A finite in-memory source; offsets are list indices. Useful in tests and examples."""

    def __init__(self, values: Iterable[bytes], topic: str = "memory", batch_size: int = 500):
        super().__init__(topic, batch_size)
        self._list = list(values)

    def _open(self) -> Iterator[bytes]:
        return iter(self._list)


class BatchSource:
    """Prepared batches of records (any topics and partitions), one batch a poll, then none.

    For tests and replays that need records of several topics in a set order (events, then
    an erasure request on its own topic, then events):

    >>> src = BatchSource([[Record(b"a", "events", 0, 0)], [Record(b"x", "erasures", 0, 0)]])
    >>> [r.topic for r in src.poll()], [r.topic for r in src.poll()], src.poll(), src.exhausted
    (['events'], ['erasures'], [], True)
    """

    def __init__(self, batches: Iterable[list[Record]]):
        self.batches = list(batches)
        self.committed: dict[tuple[str, int], int] = {}

    def poll(self, timeout: float = 1.0) -> list[Record]:
        """The next prepared batch (empty once they are all out)."""
        return self.batches.pop(0) if self.batches else []

    def commit(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Remember the committed positions (``committed``)."""
        self.committed.update(positions)

    @property
    def exhausted(self) -> bool:
        """True once every batch was returned."""
        return not self.batches

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
