"""Shared fixtures: the real services, resolved once per test session.

Each service comes from the environment (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``,
``PROMETHEUS_URL``), else testcontainers when a Docker engine runs, else the local launcher
(``deploy``). A service that cannot be had fails the run with the reason: never a skip.
"""

from __future__ import annotations

import uuid

import pytest

from deploy.services import Endpoint, ServiceError, resolve


def _resolve(name: str) -> Endpoint:
    try:
        return resolve(name)
    except ServiceError as exc:  # fail loudly, never skip
        pytest.fail(f"{name} is required for integration tests and could not start: {exc}",
                    pytrace=False)


@pytest.fixture(scope="session")
def kafka() -> Endpoint:
    return _resolve("kafka")


@pytest.fixture(scope="session")
def redis_service() -> Endpoint:
    return _resolve("redis")


@pytest.fixture(scope="session")
def prometheus() -> Endpoint:
    return _resolve("prometheus")


@pytest.fixture()
def signing_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A per-test HMAC key in the environment, as a deployment would set it."""
    key = uuid.uuid4().hex + uuid.uuid4().hex
    monkeypatch.setenv("LIFELONG_SIGNING_KEY", key)
    monkeypatch.delenv("LIFELONG_SIGNING_KEY_FILE", raising=False)
    return key


@pytest.fixture()
def unique() -> str:
    """A short unique suffix for topic names, key prefixes and consumer groups."""
    return uuid.uuid4().hex[:10]


@pytest.fixture()
def events_topic(kafka: Endpoint, unique: str):  # type: ignore[no-untyped-def]
    """A fresh 3-partition events topic and its dead-letter topic, deleted afterwards."""
    from stream.admin import TopicSpec, delete_topics, ensure_topics

    names = [f"it-{unique}", f"it-{unique}.dlq"]
    ensure_topics(kafka.address, [TopicSpec(names[0], 3), TopicSpec(names[1], 1)])
    yield names[0]
    delete_topics(kafka.address, names)


@pytest.fixture()
def store_prefix(redis_service: Endpoint, unique: str, signing_key: str):  # type: ignore[no-untyped-def]
    """A key prefix of its own in the real Redis (and a signing key); its keys deleted after."""
    import redis

    name = f"it-{unique}"
    yield name
    client = redis.Redis.from_url(redis_service.address)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()
