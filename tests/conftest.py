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
