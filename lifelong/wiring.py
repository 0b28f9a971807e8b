"""Wiring: turn :class:`~lifelong.config.Settings` into connected objects.

No logic that belongs in a package lives here: this module only resolves addresses and
builds the objects the CLI commands run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from consumers.dlq import KafkaDeadLetters
from consumers.kafka_source import KafkaSource
from consumers.publisher import RegistryPublisher
from consumers.worker import LearnerWorker
from deploy.services import ServiceError, add_scrape_target, resolve
from learning.online import OnlineLearner
from lifelong.config import ConfigError, Settings
from model_store import Registry
from monitoring.drift import ErrorDrift
from monitoring.exposition import MetricsServer
from monitoring.metrics import LearnerMetrics
from stream.admin import TopicSpec, ensure_topics

__all__ = ["OnlineRun", "build_online_run", "kafka_address", "open_registry", "redis_address"]

log = logging.getLogger(__name__)

_VARS = {"kafka": "KAFKA_BOOTSTRAP_SERVERS", "redis": "REDIS_URL", "prometheus": "PROMETHEUS_URL"}


def _address(name: str, given: str | None) -> str:
    if given:
        return given
    try:
        return resolve(name, start=False).address
    except ServiceError as exc:
        raise ConfigError(
            f"{name} address unknown: set {_VARS[name]} or run `lifelong services up` ({exc})"
        ) from exc


def kafka_address(settings: Settings) -> str:
    """Kafka bootstrap servers from the settings or the local launcher."""
    return _address("kafka", settings.kafka_bootstrap)


def redis_address(settings: Settings) -> str:
    """The Redis URL from the settings or the local launcher."""
    return _address("redis", settings.redis_url)


def open_registry(settings: Settings) -> Registry:
    """The model registry the settings point at."""
    return Registry.from_url(redis_address(settings), prefix=settings.prefix)


@dataclass
class OnlineRun:
    """Everything one online learner process holds; :meth:`close` releases it all."""

    worker: LearnerWorker
    source: KafkaSource
    dead_letters: KafkaDeadLetters
    metrics_server: MetricsServer
    metrics_registry: CollectorRegistry
    registry: Registry
    resumed_from: int | None

    def close(self) -> None:
        """Close the Kafka clients and stop serving metrics."""
        try:
            self.dead_letters.close()
        finally:
            try:
                self.source.close()
            finally:
                self.metrics_server.close()


def build_online_run(settings: Settings, *, register_target: bool = True,
                     clip: tuple[float, float] | None = None, resume: bool = True) -> OnlineRun:
    """Connect a Kafka-fed online learner that publishes to Redis and serves /metrics.

    With ``resume`` the learner warm-starts from the latest version of ``settings.model``.
    """
    bootstrap = kafka_address(settings)
    ensure_topics(bootstrap, [TopicSpec(settings.topic, settings.partitions),
                              TopicSpec(settings.dlq_topic, 1)])
    registry = open_registry(settings)
    learner, resumed = OnlineLearner(settings.model_kind, clip=clip), None
    if resume and registry.latest(settings.model) is not None:
        version, obj = registry.load_object(settings.model, "latest")
        if isinstance(obj, OnlineLearner):
            learner, resumed = obj, version.number
            log.info("warm start from %s version %d (%d events seen)", settings.model,
                     version.number, obj.events_seen)
    metrics_registry = CollectorRegistry()
    metrics = LearnerMetrics(metrics_registry, model=settings.model, topic=settings.topic)
    server = MetricsServer(metrics_registry, port=settings.metrics_port,
                           addr=settings.metrics_addr)
    if register_target:
        try:
            add_scrape_target(f"lifelong-learner-{settings.model}", server.target,
                              labels={"model": settings.model})
        except ServiceError as exc:
            log.warning("not registered with Prometheus: %s", exc)

    def on_lag(topic: str, partition: int, lag: int) -> None:
        metrics.lag.labels(settings.model, topic, str(partition)).set(lag)

    source = KafkaSource(bootstrap, [settings.topic], settings.group_id, on_lag=on_lag)
    dead_letters = KafkaDeadLetters(bootstrap, settings.dlq_topic)
    worker = LearnerWorker(
        source, learner, dead_letters,
        publisher=RegistryPublisher(registry, settings.model, parent=resumed),
        publish_every_events=settings.publish_every_events,
        publish_every_seconds=settings.publish_every_seconds,
        metrics=metrics,
        drift=ErrorDrift(),
    )
    return OnlineRun(worker, source, dead_letters, server, metrics_registry, registry, resumed)
