"""Wiring of the fine-tune worker (``lifelong finetune``): settings to connected objects."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from consumers.alarms import StoreAlarms
from consumers.deep_publisher import DeepPublisher
from consumers.finetune_worker import FineTuneWorker
from consumers.kafka_source import KafkaSource
from learning.finetune import FineTuner
from learning.gate import Gate
from learning.replay import ReplayBuffer
from learning.torch_models import DeepRecommender
from lifelong.config import Settings
from lifelong.wiring import connect_topics, open_registry, serve_metrics
from model_store import Registry
from monitoring.exposition import MetricsServer
from monitoring.metrics import FineTuneMetrics
from stream.quality import QualityGates

__all__ = ["FineTuneRun", "build_finetune_run"]

log = logging.getLogger(__name__)


@dataclass
class FineTuneRun:
    """Everything one fine-tune process holds; :meth:`close` releases it all."""

    worker: FineTuneWorker
    source: KafkaSource
    alarms: StoreAlarms
    metrics_server: MetricsServer
    metrics_registry: CollectorRegistry
    registry: Registry
    publisher: DeepPublisher
    model: str
    resumed_from: int | None

    def close(self) -> None:
        """Stop following alarms, close the Kafka consumer, stop serving metrics."""
        try:
            self.alarms.close()
        finally:
            try:
                self.source.close()
            finally:
                self.metrics_server.close()


def build_finetune_run(settings: Settings, *, clip: tuple[float, float] | None = None,
                       register_target: bool = True, resume: bool = True) -> FineTuneRun:
    """Connect a Kafka-fed fine-tune worker that publishes deep versions and serves /metrics.

    With ``resume`` the model warm-starts from the deep model's ``production`` (else
    ``candidate``, else ``latest``) version when it is of the same kind. Drift alarms are
    read from the online model's and the deep model's store events. Every option comes
    from ``settings`` (:class:`~lifelong.config.Settings`: flag, environment, default).

    With ``settings.task == "ranking"`` the model is a :class:`~learning.rank_deep.DeepRanker`
    trained with ``finetune_loss`` (sampled softmax or BPR, ``n_negatives``) on the events as
    positives weighted by type (:class:`~learning.task.RankingTask`), gated on NDCG@10 of the
    held-back slice (:class:`~learning.rank_deep.RankingTracker`), and published in format
    ``deep-ranking`` so a subscriber can ``recommend`` with it.
    """
    opts = settings
    ranking = opts.task == "ranking"
    ranking_cls: type | None = None
    if ranking:
        from learning.rank_deep import DeepRanker, RankingTracker
        from learning.task import RankingTask

        ranking_cls = DeepRanker
    model = opts.deep_model
    bootstrap = connect_topics(settings)
    registry = open_registry(settings)
    publisher = DeepPublisher(registry, model)
    recommender, resumed = None, None
    found = publisher.warm_start() if resume else None
    if found is not None and ranking_cls is not None and not isinstance(found[1], ranking_cls):
        log.warning("%s version %d is not a ranking model: starting cold", model,
                    found[0].number)
        found = None
    if found is not None and found[1].kind == opts.finetune_kind:
        (version, recommender), resumed = found, found[0].number
        log.info("warm start from %s version %d (%d samples trained)", model, version.number,
                 recommender.samples_trained)
    elif found is not None:
        log.warning("%s version %d is a %s model, not %s: starting cold", model,
                    found[0].number, found[1].kind, opts.finetune_kind)
    if recommender is None:
        recommender = (ranking_cls or DeepRecommender)(
            opts.finetune_kind, n_factors=opts.n_factors, seed=opts.finetune_seed,
            **({} if ranking else {"clip": clip}))
    tuner = FineTuner(recommender, lr=opts.lr, batch_size=opts.batch_size,
                      epochs_per_round=opts.epochs, replay_ratio=opts.replay_ratio,
                      device=opts.device, seed=opts.finetune_seed,
                      loss=opts.finetune_loss if ranking else "mse",
                      n_negatives=opts.n_negatives)
    buffer = ReplayBuffer(opts.replay_capacity, recent_window=opts.replay_capacity // 10,
                          seed=opts.finetune_seed)
    metrics_registry = CollectorRegistry()
    metrics = FineTuneMetrics(metrics_registry, model=model)
    server = serve_metrics(settings, metrics_registry, f"lifelong-finetune-{model}", model,
                           register_target=register_target)

    def on_lag(topic: str, partition: int, lag: int) -> None:
        metrics.lag.labels(model, topic, str(partition)).set(lag)

    source = KafkaSource(bootstrap, [settings.topic], opts.finetune_group, on_lag=on_lag,
                         client_id="lifelong-finetune", **settings.kafka_client_config())
    alarms = StoreAlarms(registry, [settings.model, model]).start()
    worker = FineTuneWorker(
        source, tuner, buffer, publisher,
        gate=Gate(opts.max_regression, opts.max_old_regression),
        round_every_events=opts.round_every_events,
        round_every_seconds=opts.round_every_seconds, holdout_share=opts.holdout_share,
        min_fresh=opts.min_fresh, metrics=metrics, alarms=alarms,
        quality=QualityGates.from_env_value(settings.quality),
        tracker=RankingTracker(k=10) if ranking else None,
        weight=RankingTask().weight if ranking else None)
    return FineTuneRun(worker, source, alarms, server, metrics_registry, registry, publisher,
                       model, resumed)
