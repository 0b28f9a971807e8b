"""The Redis backend: the key layout of :mod:`model_store.keys`, made atomic.

Publishing writes the chunks first, each with a staging TTL (so a publisher that dies
mid-upload leaves nothing behind for long), then one ``MULTI``/``EXEC`` adds the metadata
hash, persists the chunks, ``ZADD``s the number, moves ``latest`` if this is the newest
version, ``XADD``s to the log and ``PUBLISH``es the notice. ``WATCH`` on the ``latest``
alias makes concurrent publishers agree on which version is newest; ``WATCH`` on alias keys
and the metadata hash makes retention and alias moves exclusive.

All keys of a model share one Redis Cluster hash slot (:mod:`model_store.keys`), so every
transaction stays in one slot; the set of model names is added to after the commit. A
store still in the layout before hash tags is refused with the command that migrates it
(``lifelong models migrate-keys``, :mod:`model_store.migrate`).

>>> import redis
>>> backend = RedisBackend(redis.Redis(), prefix="doc")  # connects lazily
>>> backend.keys.meta("reco", 3)
'doc:{reco}:v:3'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import msgspec
import redis
from redis.client import Pipeline

from model_store.backend import ANY, Expect
from model_store.errors import (
    ConflictError,
    IntegrityError,
    InvalidNameError,
    ModelStoreError,
    VersionNotFoundError,
)
from model_store.keys import Keys, LegacyKeys
from model_store.records import AliasChange, StoreEvent

__all__ = ["RedisBackend", "RedisListener"]

_BATCH_BYTES = 32 * 2**20


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisListener:
    """A pub/sub subscription to one model's channel, used as a wake-up signal."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(channel)

    def wait(self, timeout: float) -> bool:
        """True if a notice arrived within ``timeout`` seconds (raises if disconnected)."""
        return self._pubsub.get_message(timeout=timeout) is not None

    def close(self) -> None:
        """Unsubscribe and release the connection."""
        self._pubsub.close()


class RedisBackend:
    """Store versions, aliases and notices in Redis; see :class:`~model_store.backend.Backend`.

    ``client`` must return bytes (``decode_responses=False``). ``staging_ttl`` bounds how
    long chunks of an unfinished publish survive; the log keeps about ``log_limit`` entries
    and each alias's history ``history_limit`` moves.
    """

    #: a forked child sees the same store (docs/publishing.md: bases written from a fork)
    shared_across_processes = True

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "lifelong",
        staging_ttl: int = 3600,
        history_limit: int = 1000,
        log_limit: int = 10_000,
        owns_client: bool = False,
    ) -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise InvalidNameError("the redis client must use decode_responses=False")
        self.client = client
        self.keys = Keys(prefix)
        self.staging_ttl = staging_ttl
        self.history_limit = history_limit
        self.log_limit = log_limit
        self._owns_client = owns_client
        self._layout_checked: set[str] = set()

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "lifelong", **options: Any) -> RedisBackend:
        """Connect with ``redis.Redis.from_url``; ``options`` go to redis-py.

        So ``redis://user:pass@host:port/db`` (AUTH) and ``rediss://`` (TLS) work, and
        ``client_name=...`` names the connections.
        """
        options.setdefault("socket_connect_timeout", 5.0)
        options.setdefault("socket_timeout", 30.0)
        client = redis.Redis.from_url(url, **options)
        return cls(client, prefix=prefix, owns_client=True)

    # versions ---------------------------------------------------------------------
    def check_layout(self, model: str) -> None:
        """Refuse a model stored in the layout before hash tags (checked once per model)."""
        if model in self._layout_checked:
            return
        old = LegacyKeys(self.keys.prefix)
        if self.client.exists(old.seq(model), old.versions(model)) and not self.client.exists(
                self.keys.seq(model)):
            raise ModelStoreError(
                f'model "{model}" is stored in the key layout before hash tags '
                f'({old.versions(model)}); run `lifelong models migrate-keys --prefix '
                f'{self.keys.prefix}` once (see docs/model_store.md)')
        self._layout_checked.add(model)

    def reserve(self, model: str) -> int:
        """Take the next number: ``INCR`` of the counter."""
        self.check_layout(model)
        return int(self.client.incr(self.keys.seq(model)))

    def put_chunks(self, model: str, number: int, chunks: Iterable[bytes]) -> int:
        """``SET`` each chunk with the staging TTL, pipelined in batches."""
        count = pending = 0
        with self.client.pipeline(transaction=False) as pipe:
            for index, chunk in enumerate(chunks):
                pipe.set(self.keys.chunk(model, number, index), chunk, ex=self.staging_ttl)
                count, pending = index + 1, pending + len(chunk)
                if pending >= _BATCH_BYTES:
                    pipe.execute()
                    pending = 0
            pipe.execute()
        return count

    def commit(self, model: str, number: int, fields: Mapping[str, str], now: float) -> bool:
        """Make the version visible in one ``MULTI``/``EXEC``."""
        k = self.keys
        chunk_keys = [k.chunk(model, number, i) for i in range(int(fields["chunks"]))]
        latest = k.alias(model, "latest")
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(latest, *chunk_keys)
                    if chunk_keys and pipe.exists(*chunk_keys) != len(chunk_keys):
                        raise IntegrityError(
                            f'model "{model}" version {number}: staged chunks expired or missing'
                        )
                    raw = pipe.get(latest)
                    previous = None if raw is None else int(raw)
                    moved = previous is None or previous < number
                    pipe.multi()
                    pipe.hset(k.meta(model, number), mapping=dict(fields))  # type: ignore[arg-type]
                    for key in chunk_keys:
                        pipe.persist(key)
                    pipe.zadd(k.versions(model), {str(number): number})
                    if moved:
                        self._queue_move(pipe, model, AliasChange(
                            alias="latest", to=number, previous=previous, actor="", ts=now,
                            kind="publish"))
                    self._queue_notice(pipe, StoreEvent(
                        "publish", model, number, "latest" if moved else "", now,
                        previous if moved else None))
                    pipe.execute()
                    self.client.sadd(k.models(), model)  # another slot: not in the MULTI
                    return moved
                except redis.WatchError:
                    continue

    def read_meta(self, model: str, numbers: Sequence[int]) -> list[dict[str, str] | None]:
        """``HGETALL`` each version's hash, pipelined."""
        with self.client.pipeline(transaction=False) as pipe:
            for n in numbers:
                pipe.hgetall(self.keys.meta(model, n))
            rows = pipe.execute()
        return [{_text(f): _text(v) for f, v in row.items()} or None for row in rows]

    def read_chunks(self, model: str, number: int, indices: range) -> list[bytes | None]:
        """``MGET`` the chunks."""
        if not indices:
            return []
        chunks = self.client.mget([self.keys.chunk(model, number, i) for i in indices])
        return cast(list[bytes | None], chunks)

    def numbers(self, model: str) -> list[int]:
        """Members of the versions sorted set, ascending."""
        self.check_layout(model)
        members = cast(list[bytes], self.client.zrange(self.keys.versions(model), 0, -1))
        return [int(n) for n in members]

    def models(self) -> list[str]:
        """Members of the models set, sorted."""
        return sorted(_text(m) for m in self.client.smembers(self.keys.models()))

    def delete(self, model: str, number: int, *, announced_before: float) -> bool:
        """Delete the hash, chunks and set member, unless aliased or fresh."""
        k = self.keys
        meta = k.meta(model, number)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(k.aliases(model), meta)
                    alias_keys = [k.alias(model, _text(a))
                                  for a in pipe.smembers(k.aliases(model))]
                    if alias_keys:
                        pipe.watch(*alias_keys)
                        if any(v is not None and int(v) == number
                               for v in pipe.mget(alias_keys)):
                            return False
                    created, announced, chunks = pipe.hmget(meta, "created", "announced", "chunks")
                    if chunks is None:
                        return False
                    if max(float(created or 0), float(announced or 0)) >= announced_before:
                        return False
                    pipe.multi()
                    pipe.zrem(k.versions(model), str(number))
                    pipe.unlink(meta, *(k.chunk(model, number, i) for i in range(int(chunks))))
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    # aliases ----------------------------------------------------------------------
    def get_alias(self, model: str, alias: str) -> int | None:
        """The alias's target, or ``None``."""
        raw = self.client.get(self.keys.alias(model, alias))
        return None if raw is None else int(raw)

    def aliases(self, model: str) -> dict[str, int]:
        """Every alias and its target."""
        names = sorted(_text(a) for a in self.client.smembers(self.keys.aliases(model)))
        if not names:
            return {}
        values = self.client.mget([self.keys.alias(model, a) for a in names])
        return {a: int(v) for a, v in zip(names, values, strict=True) if v is not None}

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
        key, meta = self.keys.alias(model, alias), self.keys.meta(model, number)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key, meta)
                    if not pipe.exists(meta):
                        raise VersionNotFoundError(model, number)
                    raw = pipe.get(key)
                    previous = None if raw is None else int(raw)
                    if expected is not ANY and previous != expected:
                        raise ConflictError(
                            f'model "{model}" alias "{alias}" points at {previous}, '
                            f"not {expected}"
                        )
                    pipe.multi()
                    self._queue_move(pipe, model, AliasChange(
                        alias=alias, to=number, previous=previous, actor=actor, ts=now,
                        kind=kind))
                    pipe.hset(meta, "announced", repr(now))
                    self._queue_notice(pipe, StoreEvent(
                        "alias", model, number, alias, now, previous, actor))
                    pipe.execute()
                    return previous
                except redis.WatchError:
                    continue

    def alias_history(self, model: str, alias: str, limit: int) -> list[AliasChange]:
        """The alias's moves, newest first."""
        rows = self.client.lrange(self.keys.history(model, alias), 0, limit - 1)
        return [msgspec.json.decode(row, type=AliasChange) for row in rows]

    # notices ----------------------------------------------------------------------
    def read_events(self, model: str, after: str, count: int) -> list[tuple[str, StoreEvent]]:
        """``XRANGE`` strictly after ``after``."""
        rows = cast(list[tuple[bytes, dict[bytes, bytes]]], self.client.xrange(
            self.keys.log(model), min=f"({after}", max="+", count=count))
        return [
            (_text(i), StoreEvent.from_fields({_text(f): _text(v) for f, v in fields.items()}))
            for i, fields in rows
        ]

    def head(self, model: str, alias: str) -> tuple[int | None, str]:
        """The alias's target and the last log id, read in one transaction."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.get(self.keys.alias(model, alias))
            pipe.xrevrange(self.keys.log(model), count=1)
            raw, last = pipe.execute()
        return (None if raw is None else int(raw)), (_text(last[0][0]) if last else "0-0")

    def listen(self, model: str) -> RedisListener:
        """Subscribe to the model's channel."""
        return RedisListener(self.client, self.keys.channel(model))

    def append_event(self, event: StoreEvent) -> str:
        """``XADD`` and ``PUBLISH`` a notice that moves nothing (an alarm), in one transaction."""
        with self.client.pipeline(transaction=True) as pipe:
            self._queue_notice(pipe, event)
            entry_id = pipe.execute()[0]
        return _text(entry_id)

    def append_audit(self, model: str, kind: str, fields: Mapping[str, str]) -> str:
        """``XADD`` one audit record (no ``MAXLEN``: an audit log is kept)."""
        return _text(self.client.xadd(self.keys.audit(model, kind), dict(fields)))  # type: ignore[arg-type]

    def read_audit(self, model: str, kind: str) -> list[tuple[str, dict[str, str]]]:
        """``XRANGE`` the whole audit log."""
        rows: Any = self.client.xrange(self.keys.audit(model, kind))
        return [(_text(i), {_text(k): _text(v) for k, v in f.items()}) for i, f in rows]

    def close(self) -> None:
        """Close the client if this backend created it."""
        if self._owns_client:
            self.client.close()

    def _queue_move(self, pipe: Pipeline, model: str, change: AliasChange) -> None:
        history = self.keys.history(model, change.alias)
        pipe.set(self.keys.alias(model, change.alias), change.to)
        pipe.sadd(self.keys.aliases(model), change.alias)
        pipe.lpush(history, msgspec.json.encode(change))
        pipe.ltrim(history, 0, self.history_limit - 1)

    def _queue_notice(self, pipe: Pipeline, event: StoreEvent) -> None:
        pipe.xadd(self.keys.log(event.model), event.to_fields(),  # type: ignore[arg-type]
                  maxlen=self.log_limit, approximate=True)
        pipe.publish(self.keys.channel(event.model), event.to_json())
