"""Fixtures for the model store on real Redis: a unique key prefix per test, cleaned up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from deploy.services import Endpoint


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Delete every key under ``prefix:``."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.unlink(*keys[start:start + 500])


@pytest.fixture()
def redis_url(redis_service: Endpoint) -> str:
    return redis_service.address


@pytest.fixture()
def prefix(redis_url: str, unique: str) -> Iterator[str]:
    """A key prefix only this test uses; its keys are deleted afterwards."""
    name = f"test-ms-{unique}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        delete_prefix(client, name)
    finally:
        client.close()


@pytest.fixture()
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()
