"""Shards exchange item-row updates through the model store, best effort, never blocking.

Each shard ``k`` of sharded ``model`` publishes its item deltas
(:class:`learning.item_side.ItemDelta`, msgpack, format ``item-delta``) as the version chain
``<model>.items.p<k>``: its delta number ``n`` is version ``n``. At every exchange a shard
publishes what it changed since the last one and adds every other shard's deltas it has not
merged yet into its own item rows (:class:`learning.item_side.ItemSide`).

Exactly-once stays with the shard checkpoint (the shard version is still the version). The
checkpoint holds the item rows, the state of the exchange (:class:`ItemSide`: the delta
taken and not yet sent, how many were sent, the peers' delta numbers merged), consistent
with each other. A shard exchanges at every checkpoint (:class:`ExchangingPublisher`:
the delta is taken before the checkpoint is pickled, sent after it is stored) and, with
``every_events``, between checkpoints too (:meth:`ItemExchange.maybe_exchange`). A shard
restored from a checkpoint reads its own deltas sent after it (their events will be
learned again) and sends ``pending - their sum`` next (:meth:`ItemSide.rebase`): what it
has sent, all told, is then exactly its checkpoint's updates; nothing is counted twice nor
lost, and a peer's delta is merged once into every line of checkpoints. A store failure is
logged and counted and learning goes on: the pending delta waits for the next exchange.

>>> from learning.online import OnlineLearner
>>> from model_store.registry import Registry
>>> from stream.schema import Event
>>> reg = Registry.from_url("memory://", signer=None)
>>> shards = [OnlineLearner(seed=k) for k in range(2)]
>>> ex = [ItemExchange(reg, "reco", k, 2) for k in range(2)]
>>> for k, learner in enumerate(shards):
...     _ = learner.learn_one(Event(f"e{k}", f"u{k}", "i1", "rating", 4.0 + k, 0.0))
>>> for k in (0, 1, 0):
...     ex[k].before_checkpoint(shards[k]); ex[k].after_checkpoint(shards[k])
>>> biases = [s.model._model.i_biases["i1"] for s in shards]
>>> biases[0] == biases[1], reg.latest("reco.items.p0").number
(True, 1)
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from learning.item_side import ItemSide, decode, encode
from model_store.keys import check_name

__all__ = ["FORMAT", "ExchangingPublisher", "ItemExchange", "items_name",
           "latest_number"]

log = logging.getLogger(__name__)

FORMAT = "item-delta"


def items_name(model: str, partition: int) -> str:
    """The chain of shard ``partition``'s item deltas: ``<model>.items.p<partition>``."""
    return check_name("model", f"{model}.items.p{partition}")


class _Store(Protocol):
    def latest(self, model: str) -> Any: ...

    def read_blob(self, model: str, version: Any) -> bytes: ...

    def publish(self, model: str, blob: bytes, *, format: str, metadata: Any = None) -> Any: ...

    def gc(self, model: str, keep_last: int = 10, *, grace_seconds: float = 60.0) -> Any: ...

    def versions(self, model: str) -> Any: ...


def latest_number(store: Any, name: str) -> int | None:
    """The number ``latest`` of chain ``name`` points at (None: empty), in one store read.

    ``Registry.latest`` reads the alias and then the version's metadata; an exchange needs
    only the number, so it reads the alias through the store's backend when it has one.

    >>> from model_store.registry import Registry
    >>> reg = Registry.from_url("memory://", signer=None)
    >>> latest_number(reg, "m.items.p0")
    >>> _ = reg.publish("m.items.p0", b"x", format=FORMAT); latest_number(reg, "m.items.p0")
    1
    """
    backend = getattr(store, "backend", None)
    if backend is not None and hasattr(backend, "get_alias"):
        return backend.get_alias(check_name("model", name), "latest")
    found = store.latest(name)
    return None if found is None else found.number


def _inner(learner: Any) -> Any:
    return getattr(learner, "learner", learner)  # a consumers.checkpoint.Checkpoint


class ItemExchange:
    """Shard ``partition`` of ``partitions``: publish its item deltas, merge the others'."""

    def __init__(self, registry: _Store, model: str, partition: int, partitions: int, *,
                 factors: bool = False, every_events: int = 0, keep_last: int = 20_000,
                 prune_every: int = 100):
        self.registry = registry
        self.model = model
        self.partition = partition
        self.peers = [k for k in range(partitions) if k != partition]
        self.factors = factors
        self.every_events = every_events
        self._at = 0
        self.name = items_name(model, partition)
        self.failures = 0
        self.merged = 0
        # retention: each chain keeps its last ``keep_last`` deltas (pruned every
        # ``prune_every`` publishes); a peer further behind skips the pruned ones, counted
        self.keep_last = keep_last
        self.prune_every = prune_every
        self._published = 0
        self.skipped = 0
        self._reconciled: set[int] = set()  # id() of learners whose pending was checked

    def _state(self, learner: Any) -> ItemSide:
        state = ItemSide.of(learner, self.factors)
        if id(state) not in self._reconciled:  # restored: what got out after its checkpoint?
            latest = latest_number(self.registry, self.name)
            if latest is not None and latest > state.sent:
                state.rebase([decode(self.registry.read_blob(self.name, n))
                              for n in range(state.sent + 1, latest + 1)], latest)
            self._reconciled.add(id(state))
        return state

    def exchange(self, learner: Any) -> None:
        """Publish the learner's item delta since the last exchange, merge the peers'."""
        self.before_checkpoint(learner)
        self.after_checkpoint(learner)

    def maybe_exchange(self, learner: Any) -> None:
        """:meth:`exchange` if ``every_events`` events were learned since the last one."""
        seen = _inner(learner).events_seen
        if self.every_events and seen - self._at >= self.every_events:
            self._at = seen
            self.exchange(learner)

    def before_checkpoint(self, learner: Any) -> None:
        """Take the learner's item delta into its pending one (call before publishing it)."""
        try:
            self._state(_inner(learner)).take(_inner(learner))
        except Exception as exc:  # the store is down (reconcile): the next one takes it
            self.failures += 1
            log.warning("item exchange of %s: %s: %s", self.name, type(exc).__name__, exc)

    def after_checkpoint(self, learner: Any) -> None:
        """Publish the pending delta (the checkpoint holding it is stored), merge the peers'."""
        learner = _inner(learner)
        try:
            state = self._state(learner)
            if state.pending is not None:
                self.registry.publish(self.name, encode(state.pending), format=FORMAT,
                                      metadata={"delta": state.sent + 1})
                state.sent_ok()
                self._published += 1
                if self.prune_every and self._published % self.prune_every == 0:
                    self.registry.gc(self.name, self.keep_last)
            self.merge(learner)
        except Exception as exc:  # best effort: learning goes on, the next exchange retries
            self.failures += 1
            log.warning("item exchange of %s: %s: %s", self.name, type(exc).__name__, exc)

    def merge(self, learner: Any) -> int:
        """Add every peer's deltas not merged yet, in order; how many were merged."""
        state = self._state(learner)
        merged = 0
        for peer in self.peers:
            name = items_name(self.model, peer)
            latest = latest_number(self.registry, name)
            start = state.seen.get(peer, 0) + 1
            if latest is None or latest < start:  # nothing new: no more reads
                continue
            if latest - start >= self.keep_last:  # older ones may be pruned
                kept = [v.number for v in self.registry.versions(name)]
                first = kept[0] if kept else latest
                if first > start:
                    self.skipped += first - start
                    log.warning("item exchange of %s: %d updates of %s were pruned before "
                                "this shard merged them (keep_last %d); skipping them",
                                self.name, first - start, name, self.keep_last)
                    start = first
                    state.seen[peer] = first - 1
            for number in range(start, latest + 1):
                delta = decode(self.registry.read_blob(name, number))
                if state.merge(learner, peer, number, delta):
                    merged += 1
        self.merged += merged
        return merged


class _Publisher(Protocol):
    def publish(self, learner: Any, positions: dict[tuple[str, int], int]) -> int: ...


class ExchangingPublisher:
    """A shard's publisher that runs an :class:`ItemExchange` around every checkpoint.

    >>> class Inner:
    ...     def publish(self, learner, positions): return 1
    >>> from learning.online import OnlineLearner
    >>> from model_store.registry import Registry
    >>> reg = Registry.from_url("memory://", signer=None)
    >>> pub = ExchangingPublisher(Inner(), ItemExchange(reg, "reco", 0, 2))
    >>> pub.publish(OnlineLearner(), {})
    1
    """

    def __init__(self, publisher: _Publisher, exchange: ItemExchange):
        self.publisher = publisher
        self.exchange = exchange

    def publish(self, learner: Any, positions: dict[tuple[str, int], int]) -> int:
        """Take the delta, publish the checkpoint (failures propagate), then exchange."""
        self.exchange.before_checkpoint(learner)
        version = self.publisher.publish(learner, positions)
        self.exchange.after_checkpoint(learner)
        return version
