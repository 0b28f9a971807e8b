from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from model_store import RedisBackend
from tests.unit.model_store.conformance import RegistryConformance
from tests.unit.model_store.subscriber_conformance import SubscriberConformance

pytestmark = pytest.mark.integration


class RedisFixtures:
    @pytest.fixture()
    def backend(self, redis_url: str, prefix: str) -> Iterator[RedisBackend]:
        backend = RedisBackend.from_url(redis_url, prefix=prefix)
        yield backend
        backend.close()

    def tamper_chunk(self, backend: Any, model: str, number: int, index: int,
                     data: bytes) -> None:
        backend.client.set(backend.keys.chunk(model, number, index), data)

    def tamper_meta(self, backend: Any, model: str, number: int, field: str,
                    value: str) -> None:
        backend.client.hset(backend.keys.meta(model, number), field, value)


class TestRedisRegistry(RedisFixtures, RegistryConformance):
    pass


class TestRedisSubscriber(RedisFixtures, SubscriberConformance):
    pass


def test_key_layout_matches_the_contract(redis_url: str, prefix: str,
                                         client: redis.Redis) -> None:
    backend = RedisBackend.from_url(redis_url, prefix=prefix)
    from model_store import Registry
    reg = Registry(backend, chunk_size=3)
    reg.publish("reco", b"abcdefg", format="raw", metadata={"offsets": {"events:0": 5}})
    reg.promote("reco", 1, actor="ops")
    keys = sorted(k.decode() for k in client.scan_iter(match=f"{prefix}:*"))
    assert keys == sorted(f"{prefix}:{s}" for s in [
        "models", "{reco}:seq", "{reco}:versions", "{reco}:v:1", "{reco}:v:1:chunk:0",
        "{reco}:v:1:chunk:1", "{reco}:v:1:chunk:2", "{reco}:alias:latest",
        "{reco}:alias:production",
        "{reco}:alias:latest:history", "{reco}:alias:production:history", "{reco}:aliases",
        "{reco}:log"])
    meta = {k.decode(): v.decode() for k, v in client.hgetall(f"{prefix}:{{reco}}:v:1").items()}
    assert meta["format"] == "raw" and meta["offsets"] == '{"events:0":5}'
    assert meta["chunks"] == "3" and meta["size"] == "7" and meta["created_iso"].endswith("+00:00")
    assert client.ttl(f"{prefix}:{{reco}}:v:1:chunk:0") == -1  # staging TTL removed on commit
    assert client.zrange(f"{prefix}:{{reco}}:versions", 0, -1, withscores=True) == [(b"1", 1.0)]
    backend.close()


def test_abandoned_publish_leaves_only_expiring_chunks(redis_url: str, prefix: str,
                                                       client: redis.Redis) -> None:
    backend = RedisBackend.from_url(redis_url, prefix=prefix)
    number = backend.reserve("reco")
    backend.put_chunks("reco", number, [b"ab", b"cd"])  # the publisher "dies" here
    assert 0 < client.ttl(f"{prefix}:{{reco}}:v:1:chunk:0") <= backend.staging_ttl
    assert backend.numbers("reco") == [] and backend.get_alias("reco", "latest") is None
    backend.close()
