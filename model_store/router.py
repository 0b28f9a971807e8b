"""Route a user to its shard: the partition kafka-python's producer puts the user's events in.

A sharded learner (``lifelong learn --sharded``, :mod:`consumers.shards`) keeps one model
per partition of the events topic, each its own version chain named ``<model>.p<k>``
(:func:`shard_name`), and a small *manifest* (``<model>.shards``, one signed JSON version)
naming the topic and its partition count. Events are keyed by ``user_id`` (its pseudonym
when the producer pseudonymises), so the user's partition is kafka-python's
``DefaultPartitioner``: ``murmur2(key) & 0x7fffffff % partitions``. :class:`ShardRouter`
keeps one :class:`~model_store.subscriber.Subscriber` per shard and answers ``predict``,
``rank`` and ``recommend`` for a user with that user's shard.

>>> partition_for("u1", 4), partition_for("u2", 4), shard_name("reco", 3)
(0, 2, 'reco.p3')
>>> from model_store.registry import Registry
>>> reg = Registry.from_url("memory://", signer=None)
>>> _ = write_manifest(reg, ShardManifest("reco", "events", 4))
>>> read_manifest(reg, "reco")
ShardManifest(model='reco', topic='events', partitions=4)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from kafka.partitioner.default import murmur2

from model_store.errors import ModelStoreError
from model_store.keys import check_name
from model_store.registry import Registry
from model_store.subscriber import Subscriber

__all__ = ["MANIFEST_FORMAT", "ShardManifest", "ShardRouter", "manifest_name",
           "partition_for", "read_manifest", "shard_name", "shards_for", "write_manifest"]

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "shard-manifest"


def shard_name(model: str, partition: int) -> str:
    """The model name of ``model``'s shard for ``partition``: ``<model>.p<partition>``."""
    return check_name("model", f"{model}.p{partition}")


def manifest_name(model: str) -> str:
    """Where ``model``'s shard manifest is stored: ``<model>.shards``."""
    return check_name("model", f"{model}.shards")


def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition kafka-python's default partitioner picks for ``key`` (UTF-8 if text).

    >>> [partition_for(f"user{n}", 6) for n in range(6)]
    [3, 0, 5, 5, 1, 4]
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    data = key.encode("utf-8") if isinstance(key, str) else key
    return (murmur2(data) & 0x7FFFFFFF) % partitions


class ShardManifest(msgspec.Struct, frozen=True):
    """What a sharded model is: its name, the events topic and that topic's partition count.

    Adding partitions to the topic would move users to other partitions (other shards), so
    a learner refuses to start when the topic's count differs from the manifest's.
    """

    model: str
    topic: str
    partitions: int

    def shards(self) -> list[str]:
        """Every shard's model name, by partition.

        >>> ShardManifest("reco", "events", 2).shards()
        ['reco.p0', 'reco.p1']
        """
        return [shard_name(self.model, k) for k in range(self.partitions)]


def shards_for(manifest: ShardManifest, keys: Iterable[str]) -> list[str]:
    """The shard models that events keyed by any of ``keys`` went to (sorted, distinct).

    >>> shards_for(ShardManifest("reco", "events", 4), ["alice", "alice"])
    ['reco.p1']
    """
    return sorted({shard_name(manifest.model, partition_for(k, manifest.partitions))
                   for k in keys})


def read_manifest(registry: Registry, model: str) -> ShardManifest | None:
    """The manifest of sharded ``model`` (verified like any blob), or ``None`` if unsharded."""
    name = manifest_name(model)
    if registry.latest(name) is None:
        return None
    return msgspec.json.decode(registry.read_blob(name, "latest"), type=ShardManifest)


def write_manifest(registry: Registry, manifest: ShardManifest) -> ShardManifest:
    """Store ``manifest`` unless the same is stored; refuse a different partition count."""
    known = read_manifest(registry, manifest.model)
    if known == manifest:
        return known
    if known is not None and known.partitions != manifest.partitions:
        raise ModelStoreError(
            f'sharded model "{manifest.model}" has {known.partitions} shards but topic '
            f'"{manifest.topic}" has {manifest.partitions} partitions: adding partitions moves '
            "users to other shards; learn into a new model name instead")
    registry.publish(manifest_name(manifest.model), msgspec.json.encode(manifest),
                     format=MANIFEST_FORMAT,
                     metadata={"partitions": manifest.partitions, "topic": manifest.topic})
    return manifest


class ShardRouter:
    """Serve sharded ``model``: each user's calls go to the subscriber of the user's shard.

    ``partitions`` defaults to the stored manifest's count. ``key`` turns the caller's user
    id into the producer's Kafka key: the raw id for ``lifelong produce`` (the default),
    the pseudonym when the producer SDK pseudonymises (pass the same
    :class:`~stream.pseudonym.Pseudonymizer`). ``pseudonymizer`` and the other keyword
    arguments are passed to every :class:`~model_store.subscriber.Subscriber`.
    """

    def __init__(self, registry: Registry, model: str, *, partitions: int | None = None,
                 key: Callable[[str], str] | None = None, **subscriber_options: Any) -> None:
        if partitions is None:
            manifest = read_manifest(registry, model)
            if manifest is None:
                raise ModelStoreError(f'model "{model}" has no shard manifest '
                                      f'("{manifest_name(model)}"): not learned with --sharded')
            partitions = manifest.partitions
        self.model = model
        self.partitions = partitions
        self.key = key
        self.subscribers = [Subscriber(registry, shard_name(model, k), **subscriber_options)
                            for k in range(partitions)]

    def start(self) -> ShardRouter:
        """Load every shard's current version and follow them."""
        for sub in self.subscribers:
            sub.start()
        return self

    def stop(self) -> None:
        """Stop following."""
        for sub in self.subscribers:
            with contextlib.suppress(Exception):
                sub.stop()

    def __enter__(self) -> ShardRouter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def shard_of(self, user: str) -> int:
        """The partition (shard) that holds ``user``'s events."""
        return partition_for(user if self.key is None else self.key(user), self.partitions)

    def subscriber(self, user: str) -> Subscriber:
        """The subscriber of ``user``'s shard."""
        return self.subscribers[self.shard_of(user)]

    def predict(self, user: str, item: str) -> float:
        """Score ``item`` for ``user`` with the user's shard."""
        return self.subscriber(user).predict(user, item)

    def rank(self, user: str, items: list[str], k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` best ``items`` for ``user`` by the user's shard, best first."""
        return self.subscriber(user).rank(user, items, k)

    def recommend(self, user: str, k: int = 10, **options: Any) -> list[tuple[str, float]]:
        """Top ``k`` of the user's shard's catalogue (see ``Subscriber.recommend``)."""
        return self.subscriber(user).recommend(user, k, **options)

    def wait_for_versions(self, numbers: dict[int, int], timeout: float = 10.0) -> bool:
        """Block until shard ``k`` serves version ``numbers[k]`` (or newer) for every k."""
        return all(self.subscribers[k].wait_for_version(n, timeout)
                   for k, n in numbers.items())
