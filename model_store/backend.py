"""What a storage backend does for the :class:`~model_store.registry.Registry`.

The registry is a thin client: it validates names, hashes, signs, chunks and decodes.
A backend stores and keeps the invariants that need atomicity: numbers that only grow,
a version visible only with its whole blob, alias compare-and-set, deletion that never
removes an aliased or freshly announced version, and a notice for every publish and
alias move. :class:`~model_store.redis_backend.RedisBackend` and
:class:`~model_store.memory_backend.MemoryBackend` are siblings that pass one
conformance suite. Metadata travels as flat ``str -> str`` maps (a Redis hash).

>>> ANY is Expect.ANY
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Protocol, runtime_checkable

from model_store.records import AliasChange, StoreEvent

__all__ = ["ANY", "AliasStore", "Backend", "EventLog", "Expect", "Listener", "VersionStore"]


class Expect(Enum):
    """Sentinel for "whatever the alias points at now" in a compare-and-set."""

    ANY = "any"


ANY = Expect.ANY


class VersionStore(Protocol):
    """Numbered, immutable versions: metadata plus a chunked blob."""

    def reserve(self, model: str) -> int:
        """Take the next version number (atomic increment; never reused)."""
        ...

    def put_chunks(self, model: str, number: int, chunks: Iterable[bytes]) -> int:
        """Stage the blob's chunks, invisible until :meth:`commit`; return how many."""
        ...

    def commit(self, model: str, number: int, fields: Mapping[str, str], now: float) -> bool:
        """Atomically make the version visible, move ``latest`` if newest, and notify.

        Returns whether ``latest`` moved. ``fields["chunks"]`` gives the chunk count.
        """
        ...

    def read_meta(self, model: str, numbers: Sequence[int]) -> list[dict[str, str] | None]:
        """Metadata of each number (``None`` where missing), in order."""
        ...

    def read_chunks(self, model: str, number: int, indices: range) -> list[bytes | None]:
        """The chunks at ``indices`` (``None`` where missing)."""
        ...

    def numbers(self, model: str) -> list[int]:
        """Visible version numbers, ascending."""
        ...

    def models(self) -> list[str]:
        """Names of models that have published at least once, sorted."""
        ...

    def delete(self, model: str, number: int, *, announced_before: float) -> bool:
        """Atomically delete a version unless it is aliased or recently announced.

        Refuses (returns False) if an alias points at it or it was created or announced at or
        after ``announced_before``; returns True if it was deleted.
        """
        ...


class AliasStore(Protocol):
    """Movable names for versions, with history."""

    def get_alias(self, model: str, alias: str) -> int | None:
        """The version an alias points at, or ``None``."""
        ...

    def aliases(self, model: str) -> dict[str, int]:
        """Every alias of the model and its version."""
        ...

    def move_alias(
        self,
        model: str,
        alias: str,
        number: int,
        *,
        actor: str,
        kind: str,
        now: float,
        expected: int | Expect | None = ANY,
    ) -> int | None:
        """Point ``alias`` at an existing version, record the move, notify.

        Returns the previous target. Raises ``ConflictError`` if ``expected`` is given and
        the alias points elsewhere, ``VersionNotFoundError`` if the version does not exist.
        """
        ...

    def alias_history(self, model: str, alias: str, limit: int) -> list[AliasChange]:
        """The alias's last ``limit`` moves, newest first."""
        ...


@runtime_checkable
class Listener(Protocol):
    """A wake-up signal: something was published or moved."""

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True if a notice arrived."""
        ...

    def close(self) -> None:
        """Stop listening."""
        ...


class EventLog(Protocol):
    """Notices: a log to read from a position, and a channel to be woken by."""

    def read_events(self, model: str, after: str, count: int) -> list[tuple[str, StoreEvent]]:
        """Up to ``count`` log entries strictly after id ``after``, oldest first."""
        ...

    def head(self, model: str, alias: str) -> tuple[int | None, str]:
        """Atomically, the alias's target and the id of the last log entry (``"0-0"``)."""
        ...

    def listen(self, model: str) -> Listener:
        """Subscribe to the model's notices."""
        ...

    def append_event(self, event: StoreEvent) -> str:
        """Append a notice that moves nothing (an alarm) to the log and notify; its log id."""
        ...

    def append_audit(self, model: str, kind: str, fields: Mapping[str, str]) -> str:
        """Append one record to the model's ``kind`` audit log (kept, not trimmed); its id."""
        ...

    def read_audit(self, model: str, kind: str) -> list[tuple[str, dict[str, str]]]:
        """Every record of the model's ``kind`` audit log, oldest first."""
        ...


@runtime_checkable
class Backend(VersionStore, AliasStore, EventLog, Protocol):
    """A complete store: versions, aliases and notices."""

    def close(self) -> None:
        """Release connections."""
        ...
