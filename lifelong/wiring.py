"""Wiring: turn :class:`~lifelong.config.Settings` into connected objects.

No logic that belongs in a package lives here: this module only resolves addresses and
builds the objects the CLI commands run.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from consumers.alarms import drift_alarm
from consumers.checkpoint import Checkpoint
from consumers.dlq import KafkaDeadLetters
from consumers.impressions import ImpressionFeed, ImpressionJoin
from consumers.kafka_source import KafkaSource
from consumers.publisher import RegistryPublisher, refusal_alarm
from consumers.retention import RetainLast
from consumers.worker import LearnerWorker
from deploy.base import ENV_VARS
from deploy.health import check_kafka, check_redis
from deploy.services import ServiceError, register_scrape_target, resolve
from learning.ranking_learner import RankingLearner
from learning.task import RankingTask, get_task
from lifelong.config import ConfigError, Settings
from model_store import Registry, Subscriber
from model_store.records import decode_offsets
from model_store.signing import key_missing
from monitoring.drift import ErrorDrift
from monitoring.drift_metrics import DriftMetrics
from monitoring.exposition import MetricsServer
from monitoring.freshness import FreshnessMetrics, LearnerFreshness
from monitoring.input_drift import InputDriftWatch
from monitoring.metrics import ImpressionJoinCollector, LearnerMetrics, RankingQualityCollector
from stream.admin import TopicSpec, ensure_topics
from stream.pseudonym import Pseudonymizer
from stream.quality import QualityGates

__all__ = ["OnlineRun", "build_online_run", "connect_topics", "kafka_address",
           "open_registry", "redis_address", "serve_metrics"]

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
    return Registry.from_url(redis_address(settings), prefix=settings.prefix,
                             **settings.redis_options())


def _reachable(name: str, address: str, check: Callable[..., Any], **config: Any) -> None:
    """Fail fast (a few seconds) with the address and the variable to fix."""
    health = check(address, 3.0, **config)
    if not health.ok:
        raise ServiceError(name, f"{address} did not answer within 3 s ({health.detail}); "
                                 f"check {ENV_VARS[name]}")


def connect_topics(settings: Settings) -> str:
    """Kafka's address, once the events and dead-letter topics exist."""
    bootstrap = kafka_address(settings)
    security = settings.kafka_client_config()
    _reachable("kafka", bootstrap, check_kafka, **security)
    kept = {"retention.ms": str(settings.dlq_retention_ms)}  # docs/privacy.md
    ensure_topics(bootstrap, [TopicSpec(settings.topic, settings.partitions),
                              TopicSpec(settings.dlq_topic, 1, config=kept),
                              TopicSpec(settings.quarantine_topic, 1, config=kept),
                              *([TopicSpec(settings.erasure_topic, 1)]
                                if settings.erasure_topic else []),
                              *([TopicSpec(settings.impressions_topic, settings.partitions)]
                                if settings.impressions_topic else [])], **security)
    return bootstrap


def serve_metrics(settings: Settings, registry: CollectorRegistry, job: str, model: str,
                  *, register_target: bool) -> MetricsServer:
    """Serve ``registry`` on /metrics and (optionally) ask Prometheus to scrape it."""
    server = MetricsServer(registry, port=settings.metrics_port, addr=settings.metrics_addr)
    if register_target:
        try:
            # removed when the process exits cleanly, expired if it dies (deploy.targets)
            register_scrape_target(job, server.target, labels={"model": model})
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
    quarantine: KafkaDeadLetters | None = None

    def close(self) -> None:
        """Close the Kafka clients and stop serving metrics (and a base still being written)."""
        publisher = getattr(self.worker.publisher, "publisher", self.worker.publisher)
        close = getattr(publisher, "close", None)
        if callable(close):  # a forked child writing a base: the chain is whole without it
            close()
        if self.deep_subscriber is not None:
            self.deep_subscriber.stop()
        close_clients(self.quarantine, self.dead_letters, self.source, self.metrics_server)


def close_clients(quarantine: Any, dead_letters: Any, source: Any, metrics_server: Any) -> None:
    """Close a learner's Kafka clients, then its /metrics server, each even if one fails."""
    try:
        if quarantine is not None:
            quarantine.close()
        dead_letters.close()
    finally:
        try:
            source.close()
        finally:
            metrics_server.close()


def build_online_run(settings: Settings, *, register_target: bool = True,
                     clip: tuple[float, float] | None = None, resume: bool = True,
                     blend_with: str | None = None, wait_for_blend: bool = False) -> OnlineRun:
    """Connect a Kafka-fed online learner that publishes to Redis and serves /metrics.

    With ``resume`` the learner warm-starts from the latest version of ``settings.model``.
    ``settings.task`` builds the learner (:func:`learning.task.get_task`): River regression
    for ``rating``, a :class:`~learning.ranking_learner.RankingLearner` for ``ranking``, whose
    rolling HR, NDCG and coverage at k are then exported on /metrics.
    With ``blend_with`` (a deep model name, e.g. ``reco-deep``) the learner follows that
    model's ``production`` alias, folds each event into its user side and publishes the
    blend: for ``rating`` a :class:`~learning.lifelong.LifelongLearner` (River + deep), for
    ``ranking`` the ranking learner with the ``deep-ranking`` model mixed in
    (:mod:`learning.rank_deep_follow`). It must exist, unless ``wait_for_blend`` (the
    online model alone until it appears).

    Configuration errors surface here, within seconds: no signing key, an unknown
    ``blend_with`` model, Kafka or Redis not answering.
    """
    _reachable("redis", redis_address(settings), check_redis, **settings.redis_options())
    bootstrap = connect_topics(settings)
    registry = open_registry(settings)
    if registry.signer is None:
        raise key_missing(f'publishing model "{settings.model}"')
    task = get_task(settings.task, clip=clip)
    joins_impressions = bool(settings.impressions_topic) and task.name == "ranking"
    if settings.impressions_topic and not joins_impressions:
        raise ConfigError(f"--impressions-topic {settings.impressions_topic}: impressions are "
                          "joined by the ranking task only (LIFELONG_TASK=ranking)")
    if blend_with:
        check_blend(registry, blend_with, wait=wait_for_blend)
        from learning.lifelong import LifelongLearner
        from learning.serving import LifelongModel
    # OnlineLearner | LifelongLearner | RankingLearner: the worker's Learner protocol types
    # score() as the rating score, the ranking learner's is a RankingScore (as in evaluate)
    learner: Any
    ranking_blend = bool(blend_with) and task.name == "ranking"
    if ranking_blend:
        assert isinstance(task, RankingTask)
        learner = task.make_learner(settings.model_kind, follow_deep=True)
    elif blend_with:
        learner = LifelongLearner(settings.model_kind, clip=clip)
    else:
        learner = task.make_learner(settings.model_kind)
    kind = type(learner)
    resumed, start_offsets, restored = None, {}, None
    resumed_version: Any = None
    if resume and registry.latest(settings.model) is not None:
        version, obj = registry.load_object(settings.model, "latest")
        restored = Checkpoint.of(obj)  # versions before the dedup window: a bare learner
        if blend_with and isinstance(restored.learner, LifelongModel):  # the serving object
            restored.learner = LifelongLearner.resume(restored.learner)
        if isinstance(restored.learner, kind):
            learner, resumed, resumed_version = restored.learner, version.number, version
            if ranking_blend:  # a ranking version learned without the deep mix keeps its state
                learner.enable_follow_deep()
            elif getattr(learner, "follows_deep", False):
                log.warning("%s version %d mixes deep version %s; without --blend-with it is "
                            "no longer updated", settings.model, version.number,
                            learner.deep_version)
            obj = learner
            start_offsets = decode_offsets(version.offsets, settings.topic)
            if settings.erasure_topic:  # erasure requests resume like events
                start_offsets |= decode_offsets(version.offsets, settings.erasure_topic)
            if joins_impressions:  # so do impressions (the join state is in the version)
                start_offsets |= decode_offsets(version.offsets, settings.impressions_topic)
            log.info("warm start from %s version %d (%d events seen), resuming at %s",
                     settings.model, version.number, obj.events_seen, start_offsets)
    deep_subscriber = None
    if blend_with:
        from consumers.deep_follow import follow_deep

        deep_subscriber = follow_deep(registry, blend_with, learner)
    metrics_registry = CollectorRegistry()
    metrics = LearnerMetrics(metrics_registry, model=settings.model, topic=settings.topic)
    server = serve_metrics(settings, metrics_registry, f"lifelong-learner-{settings.model}",
                           settings.model, register_target=register_target)

    feed: ImpressionFeed | None = None

    def on_lag(topic: str, partition: int, lag: int) -> None:
        metrics.lag.labels(settings.model, topic, str(partition)).set(lag)
        if feed is not None and topic == feed.topic:  # the join holds clicks while behind
            feed.lag(partition, lag)

    security = settings.kafka_client_config()
    topics = [settings.topic, *([settings.erasure_topic] if settings.erasure_topic else []),
              *([settings.impressions_topic] if joins_impressions else [])]
    pseudonymizer = Pseudonymizer.from_env()  # docs/privacy.md: off unless a key is set
    if joins_impressions:
        assert settings.impressions_topic is not None
        feed = ImpressionFeed(
            settings.impressions_topic,
            ImpressionJoin(settings.impression_window, settings.max_impressions),
            lambda s: learner.learn_negative(s.user, s.item, s.ts), pseudonymizer=pseudonymizer,
            track_lag=True)
    source = KafkaSource(bootstrap, topics, settings.group_id, on_lag=on_lag,
                         start_offsets=start_offsets, **security)
    dead_letters = KafkaDeadLetters(bootstrap, settings.dlq_topic, **security)
    quarantine = KafkaDeadLetters(bootstrap, settings.quarantine_topic,
                                  client_id="lifelong-quarantine", **security)
    publisher = RegistryPublisher(registry, settings.model, parent=resumed,
                                  compact_after=settings.compact_after,
                                  compact_share=settings.compact_share,
                                  compact_floor_bytes=settings.compact_floor_bytes,
                                  base_writer=settings.base_writer)
    worker = LearnerWorker(
        source, learner, dead_letters,
        publisher=RetainLast(publisher, registry, settings.model, keep_last=settings.keep_last,
                             max_age_seconds=settings.version_max_age_seconds),
        publish_every_events=settings.publish_every_events,
        publish_every_seconds=settings.publish_every_seconds,
        publish_max_share=settings.publish_max_share,
        metrics=metrics,
        drift=ErrorDrift(),
        on_drift=drift_alarm(registry, settings.model),
        start_positions=start_offsets,
        quality=QualityGates.from_env_value(settings.quality),
        quarantine=quarantine,
        on_refused=refusal_alarm(registry, settings.model),
        input_drift=InputDriftWatch.for_learner(
            learner, settings.model, metrics=DriftMetrics(metrics_registry, model=settings.model),
            on_alarm=drift_alarm(registry, settings.model)),
        freshness=LearnerFreshness.for_learner(
            learner, FreshnessMetrics(metrics_registry, model=settings.model)),
        pseudonymizer=pseudonymizer,
        erasure_topic=settings.erasure_topic,
        impressions=feed,
    )
    if resumed is not None and restored is not None:
        worker.restore(restored)
        if resumed_version is not None:  # the next version: a delta over the resumed one
            publisher.continue_from(resumed_version, worker.checkpoint())
    if isinstance(learner, RankingLearner):  # rolling HR/NDCG/coverage@k, read when scraped
        RankingQualityCollector(lambda: worker.learner.score(), model=settings.model,
                                registry=metrics_registry)
    if feed is not None:  # joined / expired / negative ... counters, read when scraped
        ImpressionJoinCollector(lambda: feed.counters, model=settings.model,
                                registry=metrics_registry)
    freeze_heap()
    return OnlineRun(worker, source, dead_letters, server, metrics_registry, registry, resumed,
                     deep_subscriber, quarantine)


def freeze_heap() -> None:
    """Leave every object alive now out of later collections (``gc.freeze``, after one).

    Imports, clients, a resumed learner: never garbage, never scanned again.

    A long-running learner creates almost no objects the collector tracks (events and
    records are untracked, model rows are numpy arrays): at 1M users 143k tracked objects at
    start, 1.2k more after 60k events. A full collection scanned the 143k anyway, once 0.3 s
    in the middle of learning (load 9), a stall every event behind it waits for.

    >>> import gc
    >>> freeze_heap(); gc.get_freeze_count() > 0
    True
    >>> gc.unfreeze()
    """
    gc.collect()
    gc.freeze()


def check_blend(registry: Registry, model: str, *, wait: bool, alias: str = "production") -> None:
    """Refuse to start blending with a ``model`` that has no ``alias`` (or warn, ``wait``)."""
    if alias in registry.aliases(model):
        return
    known = ", ".join(registry.models()) or "none"
    message = (f'--blend-with {model}: model "{model}" has no "{alias}" version in the store '
               f"(models: {known})")
    if not wait:
        raise ConfigError(f"{message}; check the name, or pass --wait-for-blend to learn "
                          "with River alone until it is promoted")
    log.warning("%s; learning with River alone until it is promoted (--wait-for-blend)",
                message)
