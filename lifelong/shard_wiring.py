"""Wiring of ``lifelong learn --sharded``: one shard (worker, version chain) per partition.

Builds what :func:`lifelong.wiring.build_online_run` builds for one learner, once per
assigned partition: the shard's learner restored from the latest version of
``<model>.p<k>``, its publisher (with retention), gates, drift detector and freshness. The
Kafka consumer, the dead-letter and quarantine producers and /metrics are shared by the
shards of the process. The manifest ``<model>.shards`` records the partition count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from consumers.alarms import drift_alarm
from consumers.dlq import KafkaDeadLetters
from consumers.erasure_feed import ErasureFeed
from consumers.item_exchange import ExchangingPublisher, ItemExchange
from consumers.kafka_source import KafkaSource
from consumers.publisher import RegistryPublisher, refusal_alarm
from consumers.retention import RetainLast
from consumers.shards import Shard, ShardedRunner, load_shard
from consumers.worker import LearnerWorker
from deploy.health import check_redis
from learning.deltas import delta_capable
from learning.task import get_task
from lifelong.config import ConfigError, Settings
from lifelong.wiring import (
    _reachable,
    close_clients,
    connect_topics,
    open_registry,
    redis_address,
    serve_metrics,
)
from model_store import Registry
from model_store.router import ShardManifest, shard_name, write_manifest
from model_store.signing import key_missing
from monitoring.drift import ErrorDrift
from monitoring.exposition import MetricsServer
from monitoring.freshness import FreshnessMetrics, LearnerFreshness
from monitoring.metrics import LearnerMetrics
from stream.pseudonym import Pseudonymizer
from stream.quality import QualityGates

__all__ = ["GROUP_CONFIG", "ShardedRun", "build_sharded_run"]

log = logging.getLogger(__name__)

# Consumer-group settings of sharded learners (kafka-python names; ``consumer_config``
# overrides them). A member learns that the group rebalances (a learner joined or left)
# from its next heartbeat's answer: kafka-python's default 3 s interval leaves a joining
# learner idle, and the others learning the whole topic, for up to 3 s per join; 0.5 s
# cuts that to 0.5 s for 2 small requests a second. A learner killed without leaving is
# noticed after ``session_timeout_ms`` (10 s; kafka-python's default is 45 s), when its
# partitions resume elsewhere from their last versions.
GROUP_CONFIG: dict[str, Any] = {"heartbeat_interval_ms": 500, "session_timeout_ms": 10_000}


@dataclass
class ShardedRun:
    """Everything one sharded learner process holds; :meth:`close` releases it all."""

    runner: ShardedRunner
    source: KafkaSource
    dead_letters: KafkaDeadLetters
    quarantine: KafkaDeadLetters
    metrics_server: MetricsServer
    registry: Registry
    manifest: ShardManifest
    erasures: ErasureFeed | None = None

    def close(self) -> None:
        """Close the Kafka clients and stop serving metrics."""
        try:
            close_clients(self.quarantine, self.dead_letters, self.source, self.metrics_server)
        finally:
            if self.erasures is not None:
                self.erasures.close()


def build_sharded_run(settings: Settings, *, register_target: bool = True,
                      clip: tuple[float, float] | None = None,
                      consumer_config: dict[str, Any] | None = None) -> ShardedRun:
    """Connect a sharded learner: shards open and close as the group assigns partitions."""
    _reachable("redis", redis_address(settings), check_redis, **settings.redis_options())
    bootstrap = connect_topics(settings)
    registry = open_registry(settings)
    if registry.signer is None:
        raise key_missing(f'publishing model "{settings.model}"')
    task = get_task(settings.task, clip=clip)
    metrics_registry = CollectorRegistry()
    metrics = LearnerMetrics(metrics_registry, model=settings.model, topic=settings.topic)
    freshness = FreshnessMetrics(metrics_registry, model=settings.model)
    server = serve_metrics(settings, metrics_registry, f"lifelong-learner-{settings.model}",
                           settings.model, register_target=register_target)

    def on_lag(topic: str, partition: int, lag: int) -> None:
        metrics.lag.labels(settings.model, topic, str(partition)).set(lag)

    security = settings.kafka_client_config()
    source = KafkaSource(bootstrap, [settings.topic], settings.group_id, on_lag=on_lag,
                         **security, **{**GROUP_CONFIG, **(consumer_config or {})})
    partitions = source.partitions_for(settings.topic) or settings.partitions
    manifest = write_manifest(registry, ShardManifest(settings.model, settings.topic,
                                                      partitions))
    dead_letters = KafkaDeadLetters(bootstrap, settings.dlq_topic, **security)
    quarantine = KafkaDeadLetters(bootstrap, settings.quarantine_topic,
                                  client_id="lifelong-quarantine", **security)
    pseudonymizer = Pseudonymizer.from_env()
    erasure_topic = settings.erasure_topic or None  # every process reads all of it
    erasures = None if erasure_topic is None else ErasureFeed(bootstrap, erasure_topic,
                                                              **security)

    def make_shard(partition: int) -> Shard:
        name = shard_name(settings.model, partition)
        try:
            learner, restored, resumed, offsets = load_shard(
                registry, name, settings.topic, lambda: task.make_learner(settings.model_kind),
                also=(erasure_topic,) if erasure_topic else ())
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc
        exchange = settings.item_exchange != "off" and delta_capable(learner)
        # row deltas compacted as a single learner's (exchanging shards too: merged item
        # rows are marked dirty and the exchange state rides in the delta,
        # learning.deltas.ItemSideRows); bases in line (no forked writer per shard)
        publisher: Any = RetainLast(
            RegistryPublisher(registry, name, parent=resumed,
                              compact_after=settings.compact_after,
                              compact_share=settings.compact_share,
                              compact_floor_bytes=settings.compact_floor_bytes),
            registry, name, keep_last=settings.keep_last,
            max_age_seconds=settings.version_max_age_seconds)
        items = ItemExchange(registry, settings.model, partition, partitions,
                             factors=settings.item_exchange == "factors",
                             every_events=settings.item_exchange_every_events)
        if exchange:
            publisher = ExchangingPublisher(publisher, items)
        worker = LearnerWorker(
            source, learner, dead_letters, publisher=publisher,
            publish_every_events=settings.publish_every_events,
            publish_every_seconds=settings.publish_every_seconds,
            publish_max_share=settings.publish_max_share,
            metrics=metrics, drift=ErrorDrift(), on_drift=drift_alarm(registry, name),
            start_positions=offsets, quality=QualityGates.from_env_value(settings.quality),
            quarantine=quarantine, on_refused=refusal_alarm(registry, name),
            freshness=LearnerFreshness.for_learner(learner, freshness),
            pseudonymizer=pseudonymizer, erasure_topic=erasure_topic,
            publish_unheld_erasures=False)
        if restored is not None:
            worker.restore(restored)
        return Shard(partition, worker, resumed, items if exchange else None)

    def latest(partition: int) -> int | None:
        found = registry.latest(shard_name(settings.model, partition))
        return None if found is None else found.number

    runner = ShardedRunner(source, settings.topic, make_shard, latest=latest, erasures=erasures)
    return ShardedRun(runner, source, dead_letters, quarantine, server, registry, manifest,
                      erasures)
