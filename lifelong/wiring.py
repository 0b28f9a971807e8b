"""Wiring: turn :class:`~lifelong.config.Settings` into connected objects.

No logic that belongs in a package lives here: this module only resolves addresses and
builds the objects the CLI commands run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from consumers.dlq import KafkaDeadLetters
from consumers.kafka_source import KafkaSource
from consumers.publisher import RegistryPublisher
from consumers.retention import RetainLast
from consumers.worker import LearnerWorker
from deploy.base import ENV_VARS
from deploy.services import ServiceError, add_scrape_target, resolve
from learning.online import OnlineLearner
from lifelong.config import ConfigError, Settings
from model_store import SAFETENSORS_FORMAT, ModelVersion, Registry, Subscriber
from monitoring.drift import ErrorDrift
from monitoring.exposition import MetricsServer
from monitoring.metrics import LearnerMetrics
from stream.admin import TopicSpec, ensure_topics

if TYPE_CHECKING:  # torch-bound: imported where the deep model is used
    from learning.lifelong import LifelongLearner

__all__ = ["OnlineRun", "build_online_run", "connect_topics", "deep_loader", "drift_alarm",
           "follow_deep", "kafka_address", "open_registry", "redis_address", "serve_metrics",
           "snapshot_offsets"]

log = logging.getLogger(__name__)



def _address(name: str, given: str | None) -> str:
    if given:
        return given
    try:
        return resolve(name, start=False).address
    except ServiceError as exc:
        raise ConfigError(
            f"{name} address unknown: set {ENV_VARS[name]} or run `lifelong services up` ({exc})"
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


def connect_topics(settings: Settings) -> str:
    """Kafka's address, once the events and dead-letter topics exist."""
    bootstrap = kafka_address(settings)
    ensure_topics(bootstrap, [TopicSpec(settings.topic, settings.partitions),
                              TopicSpec(settings.dlq_topic, 1)])
    return bootstrap


def serve_metrics(settings: Settings, registry: CollectorRegistry, job: str, model: str,
                  *, register_target: bool) -> MetricsServer:
    """Serve ``registry`` on /metrics and (optionally) ask Prometheus to scrape it."""
    server = MetricsServer(registry, port=settings.metrics_port, addr=settings.metrics_addr)
    if register_target:
        try:
            add_scrape_target(job, server.target, labels={"model": model})
        except ServiceError as exc:
            log.warning("not registered with Prometheus: %s", exc)
    return server


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
    deep_subscriber: Subscriber | None = None

    def close(self) -> None:
        """Close the Kafka clients and stop serving metrics."""
        if self.deep_subscriber is not None:
            self.deep_subscriber.stop()
        try:
            self.dead_letters.close()
        finally:
            try:
                self.source.close()
            finally:
                self.metrics_server.close()


def build_online_run(settings: Settings, *, register_target: bool = True,
                     clip: tuple[float, float] | None = None, resume: bool = True,
                     blend_with: str | None = None) -> OnlineRun:
    """Connect a Kafka-fed online learner that publishes to Redis and serves /metrics.

    With ``resume`` the learner warm-starts from the latest version of ``settings.model``.
    With ``blend_with`` (a deep model name, e.g. ``reco-deep``) the learner is a
    :class:`~learning.lifelong.LifelongLearner`: it follows that model's ``production``
    alias, folds each event into its user side and publishes the River + deep blend.
    """
    bootstrap = connect_topics(settings)
    registry = open_registry(settings)
    if blend_with:
        from learning.lifelong import LifelongLearner
    kind = LifelongLearner if blend_with else OnlineLearner
    learner: OnlineLearner | LifelongLearner = kind(settings.model_kind, clip=clip)
    resumed, start_offsets = None, {}
    if resume and registry.latest(settings.model) is not None:
        version, obj = registry.load_object(settings.model, "latest")
        if isinstance(obj, kind):
            learner, resumed = obj, version.number
            start_offsets = snapshot_offsets(version, settings.topic)
            log.info("warm start from %s version %d (%d events seen), resuming at %s",
                     settings.model, version.number, obj.events_seen, start_offsets)
    deep_subscriber = None
    if blend_with and isinstance(learner, LifelongLearner):
        deep_subscriber = follow_deep(registry, blend_with, learner)
    metrics_registry = CollectorRegistry()
    metrics = LearnerMetrics(metrics_registry, model=settings.model, topic=settings.topic)
    server = serve_metrics(settings, metrics_registry, f"lifelong-learner-{settings.model}",
                           settings.model, register_target=register_target)

    def on_lag(topic: str, partition: int, lag: int) -> None:
        metrics.lag.labels(settings.model, topic, str(partition)).set(lag)

    source = KafkaSource(bootstrap, [settings.topic], settings.group_id, on_lag=on_lag,
                         start_offsets=start_offsets)
    dead_letters = KafkaDeadLetters(bootstrap, settings.dlq_topic)
    worker = LearnerWorker(
        source, learner, dead_letters,
        publisher=RetainLast(RegistryPublisher(registry, settings.model, parent=resumed),
                             registry, settings.model, keep_last=settings.keep_last),
        publish_every_events=settings.publish_every_events,
        publish_every_seconds=settings.publish_every_seconds,
        metrics=metrics,
        drift=ErrorDrift(),
        on_drift=drift_alarm(registry, settings.model),
        start_positions=start_offsets,
    )
    return OnlineRun(worker, source, dead_letters, server, metrics_registry, registry, resumed,
                     deep_subscriber)


def snapshot_offsets(version: ModelVersion, topic: str) -> dict[tuple[str, int], int]:
    """The ``{(topic, partition): next offset}`` a published version covers, for ``topic``.

    >>> v = ModelVersion(model="m", number=1, format="f", sha256="", size=0, created=0.0,
    ...                  offsets={"events:0": 10, "events:2": 7, "other:0": 3})
    >>> snapshot_offsets(v, "events")
    {('events', 0): 10, ('events', 2): 7}
    """
    out = {}
    for key, offset in version.offsets.items():
        name, _, partition = key.rpartition(":")
        if name == topic and partition.isdigit():
            out[(name, int(partition))] = int(offset)
    return out


def follow_deep(registry: Registry, model: str, learner: LifelongLearner,
                alias: str = "production") -> Subscriber:
    """Serve ``model``'s ``alias`` inside ``learner``, swapping each new version in."""
    from learning.blend import DeepView
    from learning.torch_models import DeepRecommender

    def on_swap(_alias: str, version: ModelVersion) -> None:
        loaded = subscriber.loaded(alias)
        if loaded is not None and isinstance(loaded.model, DeepRecommender):
            learner.set_deep(DeepView.of(loaded.model), version.number)
            log.info("blending with %s version %d", model, version.number)

    subscriber = Subscriber(registry, model, alias=alias, loader=deep_loader,
                            on_swap=on_swap)
    return subscriber.start()


def deep_loader(version: ModelVersion, blob: bytes) -> Any:
    """Subscriber loader for deep models: safetensors weights -> ``DeepRecommender``."""
    from learning import weights

    if version.format != SAFETENSORS_FORMAT:
        raise ValueError(f"{version.ref}: expected format {SAFETENSORS_FORMAT}, "
                         f"got {version.format}")
    return weights.load(blob)


def drift_alarm(registry: Registry, model: str) -> Callable[[int], None]:
    """An ``on_drift`` callback that raises a drift alarm on ``model`` in the store.

    A failure to announce it is logged, never raised: an alarm must not stop learning.
    """
    def raise_alarm(at: int) -> None:
        try:
            registry.alarm(model, detail={"events": at}, actor="online")
        except Exception as exc:
            log.warning("could not raise the drift alarm for %s: %s", model, exc)

    return raise_alarm
