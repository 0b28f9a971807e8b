"""An in-process backend with the same guarantees as Redis, for tests and examples.

Everything sits in dicts behind one lock; notices wake listeners through a condition
variable. State lives in the instance, so two registries share a store only by sharing
the backend object.

>>> b = MemoryBackend()
>>> n = b.reserve("reco"); b.put_chunks("reco", n, [b"ab", b"c"])
2
>>> b.commit("reco", n, {"chunks": "2", "created": "0.0"}, now=0.0), b.get_alias("reco", "latest")
(True, 1)
>>> b.read_chunks("reco", 1, range(2)), [e.kind for _, e in b.read_events("reco", "0-0", 10)]
([b'ab', b'c'], ['publish'])
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

from model_store.backend import ANY, Expect
from model_store.errors import ConflictError, IntegrityError, VersionNotFoundError
from model_store.records import AliasChange, StoreEvent

__all__ = ["MemoryBackend"]


def _log_index(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0] or 0)


class _MemoryListener:
    """Wakes when the backend's notice counter for one model changes."""

    def __init__(self, backend: MemoryBackend, model: str) -> None:
        self._backend = backend
        self._model = model
        self._seen = backend._notices.get(model, 0)
        self._closed = False

    def wait(self, timeout: float) -> bool:
        cond = self._backend._cond
        with cond:
            changed = cond.wait_for(
                lambda: self._closed or self._backend._notices.get(self._model, 0) != self._seen,
                timeout,
            )
            self._seen = self._backend._notices.get(self._model, 0)
            return bool(changed) and not self._closed

    def close(self) -> None:
        with self._backend._cond:
            self._closed = True
            self._backend._cond.notify_all()


class MemoryBackend:
    """Thread-safe in-memory store; see :class:`~model_store.backend.Backend`."""

    #: in-process dicts: what a forked child writes stays in the child
    shared_across_processes = False

    def __init__(self, *, history_limit: int = 1000, log_limit: int = 10_000) -> None:
        self.history_limit = history_limit
        self.log_limit = log_limit
        self._cond = threading.Condition(threading.RLock())
        self._audit: dict[tuple[str, str], list[tuple[str, dict[str, str]]]] = {}
        self._seq: dict[str, int] = {}
        self._meta: dict[str, dict[int, dict[str, str]]] = {}
        self._staged: dict[tuple[str, int], list[bytes]] = {}
        self._chunks: dict[tuple[str, int], list[bytes]] = {}
        self._aliases: dict[str, dict[str, int]] = {}
        self._history: dict[tuple[str, str], list[AliasChange]] = {}
        self._log: dict[str, list[tuple[int, StoreEvent]]] = {}
        self._log_seq: dict[str, int] = {}
        self._notices: dict[str, int] = {}

    # versions ---------------------------------------------------------------------
    def reserve(self, model: str) -> int:
        """Take the next number."""
        with self._cond:
            self._seq[model] = self._seq.get(model, 0) + 1
            return self._seq[model]

    def put_chunks(self, model: str, number: int, chunks: Iterable[bytes]) -> int:
        """Stage the chunks."""
        staged = [bytes(c) for c in chunks]
        with self._cond:
            self._staged[(model, number)] = staged
        return len(staged)

    def commit(self, model: str, number: int, fields: Mapping[str, str], now: float) -> bool:
        """Make the version visible, atomically."""
        with self._cond:
            staged = self._staged.pop((model, number), None)
            if staged is None or len(staged) != int(fields["chunks"]):
                raise IntegrityError(f'model "{model}" version {number}: staged chunks missing')
            self._chunks[(model, number)] = staged
            self._meta.setdefault(model, {})[number] = dict(fields)
            previous = self._aliases.get(model, {}).get("latest")
            moved = previous is None or previous < number
            if moved:
                self._aliases.setdefault(model, {})["latest"] = number
                self._record(model, AliasChange(alias="latest", to=number, previous=previous,
                                                actor="", ts=now, kind="publish"))
            self._notify(StoreEvent("publish", model, number, "latest" if moved else "", now,
                                    previous if moved else None))
            return moved

    def read_meta(self, model: str, numbers: Sequence[int]) -> list[dict[str, str] | None]:
        """Copies of the versions' metadata."""
        with self._cond:
            table = self._meta.get(model, {})
            return [dict(table[n]) if n in table else None for n in numbers]

    def read_chunks(self, model: str, number: int, indices: range) -> list[bytes | None]:
        """The chunks at ``indices``."""
        with self._cond:
            chunks = self._chunks.get((model, number))
            if chunks is None:
                return [None for _ in indices]
            return [chunks[i] if 0 <= i < len(chunks) else None for i in indices]

    def numbers(self, model: str) -> list[int]:
        """Visible numbers, ascending."""
        with self._cond:
            return sorted(self._meta.get(model, {}))

    def models(self) -> list[str]:
        """Models that have published, sorted."""
        with self._cond:
            return sorted(self._meta)

    def delete(self, model: str, number: int, *, announced_before: float) -> bool:
        """Delete unless aliased or fresh."""
        with self._cond:
            meta = self._meta.get(model, {}).get(number)
            if meta is None or number in self._aliases.get(model, {}).values():
                return False
            seen = max(float(meta.get("created", 0)), float(meta.get("announced", 0)))
            if seen >= announced_before:
                return False
            del self._meta[model][number]
            self._chunks.pop((model, number), None)
            return True

    # aliases ----------------------------------------------------------------------
    def get_alias(self, model: str, alias: str) -> int | None:
        """The alias's target, or ``None``."""
        with self._cond:
            return self._aliases.get(model, {}).get(alias)

    def aliases(self, model: str) -> dict[str, int]:
        """Every alias and its target."""
        with self._cond:
            return dict(self._aliases.get(model, {}))

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
        """Compare-and-set the alias, with history and notice."""
        with self._cond:
            meta = self._meta.get(model, {}).get(number)
            if meta is None:
                raise VersionNotFoundError(model, number)
            previous = self._aliases.get(model, {}).get(alias)
            if expected is not ANY and previous != expected:
                raise ConflictError(
                    f'model "{model}" alias "{alias}" points at {previous}, not {expected}'
                )
            self._aliases.setdefault(model, {})[alias] = number
            meta["announced"] = repr(now)
            self._record(model, AliasChange(alias=alias, to=number, previous=previous,
                                            actor=actor, ts=now, kind=kind))
            self._notify(StoreEvent("alias", model, number, alias, now, previous, actor))
            return previous

    def alias_history(self, model: str, alias: str, limit: int) -> list[AliasChange]:
        """The alias's moves, newest first."""
        with self._cond:
            return list(self._history.get((model, alias), [])[:limit])

    # notices ----------------------------------------------------------------------
    def read_events(self, model: str, after: str, count: int) -> list[tuple[str, StoreEvent]]:
        """Log entries strictly after ``after``."""
        start = _log_index(after)
        with self._cond:
            entries = [(f"{i}-0", ev) for i, ev in self._log.get(model, []) if i > start]
            return entries[:count]

    def head(self, model: str, alias: str) -> tuple[int | None, str]:
        """The alias's target and the last log id."""
        with self._cond:
            return self._aliases.get(model, {}).get(alias), f"{self._log_seq.get(model, 0)}-0"

    def listen(self, model: str) -> _MemoryListener:
        """A listener woken by this model's notices."""
        with self._cond:
            return _MemoryListener(self, model)

    def append_event(self, event: StoreEvent) -> str:
        """Log and announce a notice that moves nothing (an alarm)."""
        with self._cond:
            return self._notify(event)

    def append_audit(self, model: str, kind: str, fields: Mapping[str, str]) -> str:
        """Keep one audit record in memory."""
        with self._cond:
            rows = self._audit.setdefault((model, kind), [])
            rows.append((f"{len(rows) + 1}-0", dict(fields)))
            return rows[-1][0]

    def read_audit(self, model: str, kind: str) -> list[tuple[str, dict[str, str]]]:
        """The audit records, oldest first."""
        with self._cond:
            return list(self._audit.get((model, kind), []))

    def close(self) -> None:
        """Nothing to release."""

    def _record(self, model: str, change: AliasChange) -> None:
        history = self._history.setdefault((model, change.alias), [])
        history.insert(0, change)
        del history[self.history_limit:]

    def _notify(self, event: StoreEvent) -> str:
        model = event.model
        self._log_seq[model] = self._log_seq.get(model, 0) + 1
        log = self._log.setdefault(model, [])
        log.append((self._log_seq[model], event))
        del log[: max(0, len(log) - self.log_limit)]
        self._notices[model] = self._notices.get(model, 0) + 1
        self._cond.notify_all()
        return f"{self._log_seq[model]}-0"
