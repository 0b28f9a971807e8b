"""The router sends a user to the partition kafka-python's producer puts the user's events in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner

from learning.online import OnlineLearner
from model_store.errors import ModelStoreError
from model_store.registry import Registry
from model_store.router import (
    ShardManifest,
    ShardRouter,
    partition_for,
    read_manifest,
    shard_name,
    write_manifest,
)
from model_store.signing import Signer
from stream.schema import Event


class _Cluster:
    """The two questions kafka-python's DefaultPartitioner asks of the cluster metadata."""

    def __init__(self, partitions: int):
        self.partitions = set(range(partitions))

    def topics(self) -> set[str]:
        return {"events"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions


@settings(max_examples=500, deadline=None)
@given(user=st.text(min_size=0, max_size=40), partitions=st.integers(1, 256))
def test_same_partition_as_kafka_pythons_producer_for_text_keys(user, partitions):
    key = user.encode("utf-8")
    expected = DefaultPartitioner().partition("events", user, key, None, None,
                                              _Cluster(partitions))
    assert partition_for(user, partitions) == expected == partition_for(key, partitions)


@settings(max_examples=300, deadline=None)
@given(key=st.binary(min_size=0, max_size=64), partitions=st.integers(1, 64))
def test_same_partition_as_kafka_pythons_producer_for_bytes(key, partitions):
    expected = DefaultPartitioner().partition("events", key, key, None, None,
                                              _Cluster(partitions))
    assert partition_for(key, partitions) == expected


def test_partition_count_must_be_positive():
    with pytest.raises(ValueError):
        partition_for("u", 0)


def test_manifest_refuses_another_partition_count():
    reg = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-router-key"))
    write_manifest(reg, ShardManifest("reco", "events", 4))
    write_manifest(reg, ShardManifest("reco", "events", 4))  # the same: nothing new
    assert len(reg.versions("reco.shards")) == 1
    with pytest.raises(ModelStoreError, match="adding partitions moves users"):
        write_manifest(reg, ShardManifest("reco", "events", 6))
    assert read_manifest(reg, "reco") == ShardManifest("reco", "events", 4)
    assert read_manifest(reg, "other") is None


def _shards(reg: Registry, partitions: int) -> dict[int, OnlineLearner]:
    learners = {p: OnlineLearner(seed=p) for p in range(partitions)}
    for n in range(400):
        user, item = f"u{n % 37}", f"i{n % 11}"
        p = partition_for(user, partitions)
        learners[p].learn_one(Event(f"e{n}", user, item, "rating", float(1 + n % 5), float(n)))
    for p, learner in learners.items():
        reg.publish_object(shard_name("reco", p), learner)
    write_manifest(reg, ShardManifest("reco", "events", partitions))
    return learners


def test_router_answers_with_each_users_shard():
    reg = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-router-key"))
    learners = _shards(reg, 3)
    with ShardRouter(reg, "reco") as router:
        assert router.wait_for_versions({p: 1 for p in range(3)}, 5)
        shards_seen = set()
        for n in range(37):
            user = f"u{n}"
            p = router.shard_of(user)
            shards_seen.add(p)
            for item in ("i0", "i3", "i10", "new-item"):
                assert router.predict(user, item) == learners[p].predict_one(user, item)
            ranked = router.rank(user, ["i0", "i1", "i2"], k=2)
            assert ranked == sorted(((i, learners[p].predict_one(user, i))
                                     for i in ("i0", "i1", "i2")),
                                    key=lambda pair: pair[1], reverse=True)[:2]
        assert shards_seen == {0, 1, 2}


def test_router_keys_by_the_producers_pseudonym():
    reg = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-router-key"))
    _shards(reg, 3)

    def pseudonym(user: str) -> str:
        return f"p-{user}"

    router = ShardRouter(reg, "reco", key=pseudonym)
    assert all(router.shard_of(f"u{n}") == partition_for(f"p-u{n}", 3) for n in range(50))


def test_an_unsharded_model_has_no_router():
    reg = Registry.from_url("memory://", signer=None)
    with pytest.raises(ModelStoreError, match="not learned with --sharded"):
        ShardRouter(reg, "reco")
