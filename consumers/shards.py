"""Partitions are shards: each assigned partition owns its learner, checkpoint and offsets.

``lifelong learn --sharded`` runs a :class:`ShardedRunner`: one
:class:`~consumers.worker.LearnerWorker` per assigned partition of the events topic, each
publishing its own version chain ``<model>.p<k>`` (:func:`model_store.router.shard_name`)
whose versions cover that partition's offsets only. Any number of processes in one
consumer group share the partitions:

- on **revoke** a shard publishes a version (its checkpoint: learner, dedup window, gate
  state, the offsets it covers) and is parked;
- on **assign** a shard is restored from its latest version and the partition is seeked to
  the offsets that version covers (a partition with no version starts at its beginning).
  A parked shard whose latest version is still the one it published (nobody learned that
  partition meanwhile) is kept as it is, so the eager rebalance of every join costs one
  publish and no reload for the partitions that stay.

A rebalance therefore loses and doubles nothing, and neither does ``kill -9``: the dead
member's partitions resume, in their new owner, from their last versions. If a shard
cannot be opened (the store is down) its partition is paused and the opening retried.
Records a shard has already learned (offset below its resume point) are dropped.

>>> from stream.source import Record
>>> from learning.online import OnlineLearner
>>> from stream.source import ListDeadLetters
>>> class Two:  # a source with partitions 0 and 1, assigned at the first poll
...     on_assign = on_revoke = None
...     assigned, exhausted, start_offsets = True, False, {}
...     def __init__(self): self.batches = [[Record(b'{"event_id":"%d","user_id":"u%d",'
...         b'"item_id":"i","type":"rating","value":4,"ts":1}' % (n, n), "t", n % 2, n // 2)
...         for n in range(4)]]
...     def poll(self, timeout=1.0):
...         if self.on_assign: self.on_assign([("t", 0), ("t", 1)]); self.on_assign = None
...         return self.batches.pop() if self.batches else []
...     def commit(self, positions): pass
...     def pause(self, parts): pass
>>> src = Two()
>>> runner = ShardedRunner(src, "t", lambda p: Shard(p, LearnerWorker(src, OnlineLearner(),
...                        ListDeadLetters())), latest=lambda p: None)
>>> stats = runner.run(idle_timeout=0.01, poll_timeout=0.01)
>>> stats.learned, sorted((p, s.worker.learner.events_seen) for p, s in runner.shards.items())
(4, [(0, 2), (1, 2)])
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from consumers.checkpoint import Checkpoint
from consumers.polling import PollLoop
from consumers.worker import LearnerWorker, WorkerStats
from stream.source import Record

__all__ = ["Shard", "ShardFactory", "ShardedRunner", "load_shard", "merge_stats"]

log = logging.getLogger(__name__)


@dataclass
class Shard:
    """One partition's worker and the store version it was restored from (None: new).

    ``exchange`` (a :class:`consumers.item_exchange.ItemExchange`, or None) is run after
    every batch (``maybe_exchange``: the shards' global item side).
    """

    partition: int
    worker: LearnerWorker
    restored: int | None = None
    exchange: Any = None

    @property
    def known_version(self) -> int | None:
        """The newest version of this shard the process knows is in the store."""
        versions = self.worker.stats.versions
        return versions[-1] if versions else self.restored


ShardFactory = Callable[[int], Shard]  # partition -> a shard restored from its latest version


class _Store(Protocol):
    def latest(self, model: str) -> Any: ...

    def load_object(self, model: str, version: Any) -> tuple[Any, Any]: ...


def load_shard(registry: _Store, name: str, topic: str, fresh: Callable[[], Any], *,
               also: tuple[str, ...] = ()
               ) -> tuple[Any, Checkpoint | None, int | None, dict[tuple[str, int], int]]:
    """A shard's learner from its latest version (or ``fresh()``), with what it resumes from.

    Returns the learner, its checkpoint, the version's number and the offsets it covers in
    ``topic`` and the ``also`` topics (the erasure topic) (``None, None, {}`` for a shard
    with no version). A version holding another kind of learner than ``fresh()`` builds is
    refused.

    >>> from learning.online import OnlineLearner
    >>> from model_store.registry import Registry
    >>> reg = Registry.from_url("memory://", signer=None)
    >>> load_shard(reg, "reco.p0", "events", OnlineLearner)[1:]
    (None, None, {})
    """
    from model_store.records import decode_offsets

    learner = fresh()
    if registry.latest(name) is None:
        return learner, None, None, {}
    version, obj = registry.load_object(name, "latest")
    restored = Checkpoint.of(obj)
    if not isinstance(restored.learner, type(learner)):
        raise TypeError(f'shard "{name}" holds a {type(restored.learner).__name__}, not a '
                        f"{type(learner).__name__}")
    offsets = decode_offsets(version.offsets, topic)
    for other in also:
        offsets |= decode_offsets(version.offsets, other)
    log.info("shard %s: restored version %d (%d events), resuming at %s", name,
             version.number, restored.learner.events_seen, offsets)
    return restored.learner, restored, version.number, offsets


class _PartitionedSource(Protocol):
    on_assign: Any
    on_revoke: Any
    assigned: bool
    start_offsets: dict[tuple[str, int], int]

    def poll(self, timeout: float = 1.0) -> list[Record]: ...

    def pause(self, parts: list[tuple[str, int]]) -> None: ...

    @property
    def exhausted(self) -> bool: ...


def merge_stats(all_stats: list[WorkerStats]) -> WorkerStats:
    """One summary of several workers' stats (counters added, versions concatenated).

    >>> merge_stats([WorkerStats(consumed=2, versions=[1]), WorkerStats(consumed=3)]).consumed
    5
    """
    out = WorkerStats()
    for s in all_stats:
        for name in ("consumed", "learned", "invalid", "duplicates", "publish_failures",
                     "quarantined", "refused_publishes", "commit_failures", "erasures"):
            setattr(out, name, getattr(out, name) + getattr(s, name))
        out.versions.extend(s.versions)
        out.drift_alarms.extend(s.drift_alarms)
        for kind, n in s.invalid_by_kind.items():
            out.invalid_by_kind[kind] = out.invalid_by_kind.get(kind, 0) + n
        for kind, n in s.quarantined_by_reason.items():
            out.quarantined_by_reason[kind] = out.quarantined_by_reason.get(kind, 0) + n
    return out


class ShardedRunner:
    """Poll ``source`` (a consumer of ``topic``) and feed each partition's records to its shard.

    ``make_shard(partition)`` opens a shard from its latest version; ``latest(partition)``
    is the number of that version in the store (None: none), used to keep a parked shard.
    ``erasures`` (a :class:`~consumers.erasure_feed.ErasureFeed`) reads the erasure topic:
    each request goes to every shard held whose erasure position is at or below it.
    """

    def __init__(self, source: _PartitionedSource, topic: str, make_shard: ShardFactory, *,
                 latest: Callable[[int], int | None], retry_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, erasures: Any = None):
        self.erasures = erasures
        self.source = source
        self.topic = topic
        self.make_shard = make_shard
        self.latest = latest
        self.retry_seconds = retry_seconds
        self._clock = clock
        self.shards: dict[int, Shard] = {}
        self._parked: dict[int, Shard] = {}
        self._pending: dict[int, float] = {}  # partition -> when to try opening it again
        self._retired: list[WorkerStats] = []
        self._consumed = 0
        self.rebalances = 0
        source.on_assign = self.assign
        source.on_revoke = self.revoke

    # rebalance ------------------------------------------------------------------------
    def revoke(self, parts: list[tuple[str, int]]) -> None:
        """Checkpoint (publish) and park every revoked shard."""
        self.rebalances += 1
        for topic, partition in parts:
            self._pending.pop(partition, None)
            shard = self.shards.pop(partition, None) if topic == self.topic else None
            if shard is None:
                continue
            shard.worker.publish()  # a failure is logged and counted: its last version stays
            self._parked[partition] = shard
        log.info("revoked partitions %s; parked shards %s", sorted(p for _, p in parts),
                 sorted(self._parked))

    def assign(self, parts: list[tuple[str, int]]) -> None:
        """Open (restore or keep) a shard per assigned partition and set where it resumes."""
        mine = sorted(p for t, p in parts if t == self.topic)
        for partition in mine:
            if partition not in self.shards and not self._open(partition):
                self._pending[partition] = self._clock() + self.retry_seconds
        for partition in list(self._parked):  # given to another member: forget it
            self._retire(self._parked.pop(partition))
        if self._pending:
            self.source.pause([(self.topic, p) for p in sorted(self._pending)])
        log.info("assigned partitions %s (shards %s, waiting for %s)", mine,
                 sorted(self.shards), sorted(self._pending))

    def _open(self, partition: int) -> bool:
        try:
            parked = self._parked.pop(partition, None)
            if parked is not None and self.latest(partition) == parked.known_version:
                shard = parked  # nobody learned this partition since it was parked
            else:
                if parked is not None:
                    self._retire(parked)
                shard = self.make_shard(partition)
        except Exception as exc:  # the store is down: pause the partition, retry
            log.error("cannot open the shard of partition %d (%s: %s); paused, retrying",
                      partition, type(exc).__name__, exc)
            return False
        self.shards[partition] = shard
        self.source.start_offsets[(self.topic, partition)] = self._resume_point(shard)
        if self.erasures is not None:  # the requests after the shard's version, again
            self.erasures.rewind(shard.worker.positions)
        return True

    def apply_erasures(self, timeout: float = 0.0) -> int:
        """Hand the erasure requests read since the last call to the shards; how many."""
        records = self.erasures.poll(timeout) if self.erasures is not None else []
        for record in records:
            key = (record.topic, record.partition)
            for shard in list(self.shards.values()):
                if shard.worker.positions.get(key, 0) <= record.offset:
                    shard.worker.process([record])  # forgets, places; publishes if held
        return len(records)

    def _resume_point(self, shard: Shard) -> int:
        return shard.worker.positions.get((self.topic, shard.partition), 0)

    def _retry_pending(self) -> None:
        now = self._clock()
        for partition, at in list(self._pending.items()):
            if at > now:
                continue
            if self._open(partition):
                del self._pending[partition]
                resume_at = getattr(self.source, "resume_at", None)
                if resume_at is not None:
                    resume_at(self.topic, partition, self._resume_point(self.shards[partition]))
            else:
                self._pending[partition] = now + self.retry_seconds

    def _retire(self, shard: Shard) -> None:
        self._retired.append(shard.worker.stats)

    # the loop -------------------------------------------------------------------------
    def process(self, records: list[Record]) -> None:
        """Hand each partition's records, in order, to its shard."""
        by_partition: dict[int, list[Record]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        for partition, batch in by_partition.items():
            self._consumed += len(batch)
            shard = self.shards.get(partition)
            if shard is None:
                if not self._open(partition):
                    raise RuntimeError(f"records of partition {partition} but no shard")
                shard = self.shards[partition]
            start = self._resume_point(shard)
            fresh = [r for r in batch if r.offset >= start]
            if len(fresh) < len(batch):
                log.warning("partition %d: dropped %d records below the shard's resume point "
                            "%d (already learned)", partition, len(batch) - len(fresh), start)
            if fresh:
                shard.worker.process(fresh)

    def publish_all(self) -> None:
        """Publish every shard that learned since its last version."""
        for shard in self.shards.values():
            shard.worker.publish()

    @property
    def stats(self) -> WorkerStats:
        """Every shard's figures added up, the ones handed to other members included."""
        current = [s.worker.stats for s in (*self.shards.values(), *self._parked.values())]
        return merge_stats([*self._retired, *current])

    def run(self, *, stop: threading.Event | None = None, max_events: int | None = None,
            idle_timeout: float | None = None, poll_timeout: float = 1.0,
            on_batch: Callable[[WorkerStats], None] | None = None) -> WorkerStats:
        """Poll, learn and publish per shard until a reason to stop; publish all at the end."""
        stop = stop or threading.Event()
        started = self._clock()
        loop = PollLoop(self.source, max_events=max_events, idle_timeout=idle_timeout,
                        poll_timeout=poll_timeout, clock=self._clock)
        try:
            while not stop.is_set() and not loop.done(self._consumed):
                if self._pending:
                    self._retry_pending()
                wait = min((shard.worker.poll_wait(poll_timeout)
                            for shard in self.shards.values()), default=poll_timeout)
                records = loop.poll(self._consumed, timeout=wait)
                if self.erasures is not None:
                    self.apply_erasures()
                if records:
                    self.process(records)
                elif loop.done(self._consumed):
                    break
                for shard in list(self.shards.values()):
                    shard.worker.maybe_publish()
                    if shard.exchange is not None:
                        shard.exchange.maybe_exchange(shard.worker.learner)
                if on_batch is not None:
                    on_batch(self.stats)
        finally:
            self.publish_all()
        stats = self.stats
        stats.elapsed = self._clock() - started
        return stats
