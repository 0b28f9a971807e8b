"""Subscriber metrics, on a registry passed in (never the import-time global one).

Several subscribers in one process (one per model) share one set of metric families:
:class:`SubscriberMetrics` reuses the families already registered on the registry.

>>> from prometheus_client import CollectorRegistry
>>> reg = CollectorRegistry()
>>> a, b = SubscriberMetrics(reg), SubscriberMetrics(reg)
>>> a.version.labels("reco", "latest").set(3); b.failures.labels("reco", "integrity").inc()
>>> reg.get_sample_value("lifelong_subscriber_model_version", {"model": "reco", "alias": "latest"})
3.0
>>> reg.get_sample_value("lifelong_subscriber_load_failures_total",
...                      {"model": "reco", "reason": "integrity"})
1.0
"""

from __future__ import annotations

from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from model_store.errors import (
    FormatError,
    IntegrityError,
    ModelStoreError,
    SigningKeyError,
    UnsignedModelError,
    VersionNotFoundError,
)

__all__ = ["CONNECTION_ERRORS", "FAILURE_REASONS", "LOAD_BUCKETS", "SubscriberMetrics",
           "failure_reason"]

LOAD_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
_REASONS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((UnsignedModelError,), "unsigned"), ((IntegrityError,), "integrity"),
    ((SigningKeyError,), "key"), ((VersionNotFoundError,), "not_found"),
    ((FormatError,), "format"), ((ModelStoreError,), "store"),
    (CONNECTION_ERRORS, "connection"),
)
FAILURE_REASONS = (*(name for _, name in _REASONS), "loader")  # every ``reason`` label value


def failure_reason(exc: BaseException) -> str:
    """The bounded ``reason`` label of a load failure (``loader`` for anything else).

    >>> [failure_reason(e) for e in (UnsignedModelError("x"), OSError(), KeyError())]
    ['unsigned', 'connection', 'loader']
    """
    return next((name for kinds, name in _REASONS if isinstance(exc, kinds)), "loader")


def _family(kind: type, name: str, doc: str, labels: tuple[str, ...],
            registry: CollectorRegistry, **kw: Any) -> Any:
    try:
        return kind(name, doc, labels, registry=registry, **kw)
    except ValueError:  # already registered by another subscriber: share it
        existing = registry._names_to_collectors.get(name)
        if not isinstance(existing, kind):
            raise
        return existing


class SubscriberMetrics:
    """The metric families of :class:`~model_store.subscriber.Subscriber`.

    Labels are bounded: ``model``, ``alias`` and ``reason`` (see :func:`failure_reason`:
    ``integrity``, ``unsigned``, ``key``, ``not_found``, ``format``, ``store``,
    ``connection``, ``loader``).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        ma = ("model", "alias")
        self.version = _family(
            Gauge, "lifelong_subscriber_model_version",
            "Version number the subscriber serves, per alias.", ma, registry)
        self.created = _family(
            Gauge, "lifelong_subscriber_model_created_timestamp_seconds",
            "Unix time the served version was published (age = time() - this).", ma, registry)
        self.swaps = _family(
            Counter, "lifelong_subscriber_swaps",
            "Model versions swapped in.", ma, registry)
        self.failures = _family(
            Counter, "lifelong_subscriber_load_failures",
            "Failed attempts to load a version; the last good model keeps serving.",
            ("model", "reason"), registry)
        self.load_seconds = _family(
            Histogram, "lifelong_subscriber_load_seconds",
            "Time to fetch, verify and deserialise a version.", ("model",), registry,
            buckets=LOAD_BUCKETS)
