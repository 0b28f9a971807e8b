"""Wiring of the fine-tune worker (``lifelong finetune``): settings to connected objects.

Under ``torchrun`` (:func:`join_group`) rank 0 is built by :func:`build_finetune_run` (Kafka,
store, metrics, publishing, commits) and the other ranks by :func:`follow_finetune` (they
only train, on the rounds rank 0 sends); see docs/distributed_finetune.md.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from consumers.alarms import StoreAlarms
from consumers.deep_publisher import DeepPublisher
from consumers.finetune_worker import FineTuneWorker
from consumers.kafka_source import KafkaSource
from learning import weights
from learning.device import pick_device
from learning.distributed import DistEnv, Group
from learning.errors import ConfigurationError
from learning.finetune import FineTuner
from learning.gate import Gate
from learning.replay import ReplayBuffer
from learning.torch_models import DeepRecommender
from lifelong.config import Settings
from lifelong.wiring import connect_topics, open_registry, serve_metrics
from model_store import Registry
from monitoring.exposition import MetricsServer
from monitoring.metrics import FineTuneMetrics
from stream.pseudonym import Pseudonymizer
from stream.quality import QualityGates

__all__ = ["FineTuneRun", "build_finetune_run", "follow_finetune", "join_group"]

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
    group: Group | None = None

    def close(self) -> None:
        """Stop following alarms, close the Kafka consumer, stop serving metrics.

        Under torchrun, also tell the other ranks that no round follows and leave the group.
        """
        try:
            self.alarms.close()
        finally:
            try:
                self.source.close()
            finally:
                try:
                    self.metrics_server.close()
                finally:
                    if self.group is not None:
                        self.group.stop()
                        self.group.close()


def join_group(settings: Settings) -> Group | None:
    """Under ``torchrun``: join the process group (gloo on CPU, NCCL on CUDA); else ``None``.

    A partial torchrun environment is an error. ``LIFELONG_DIST_TIMEOUT`` (seconds, default
    one day) bounds each collective, so it must exceed the longest gap between two rounds.
    """
    env = DistEnv.from_environ()
    if env is None:
        return None
    try:
        timeout = float(os.environ.get("LIFELONG_DIST_TIMEOUT", "86400"))
    except ValueError:
        raise ConfigurationError("LIFELONG_DIST_TIMEOUT must be a number of seconds") from None
    return Group(env, pick_device(env.device(settings.device)), timeout=timeout)


def _tuner(settings: Settings, recommender: DeepRecommender, group: Group | None) -> FineTuner:
    """The fine-tuner on this rank's device; ``sparse_adam``, but dense ``adam`` on NCCL."""
    opts = settings
    sparse = group is None or group.sparse_ok  # NCCL allreduces no sparse gradients
    return FineTuner(recommender, lr=opts.lr, batch_size=opts.batch_size,
                     epochs_per_round=opts.epochs, replay_ratio=opts.replay_ratio,
                     optimizer="sparse_adam" if sparse else "adam",
                     device=opts.device if group is None else str(group.device),
                     seed=opts.finetune_seed, group=group,
                     loss=opts.finetune_loss if opts.task == "ranking" else "mse",
                     n_negatives=opts.n_negatives)


def _buffer(settings: Settings, group: Group | None) -> ReplayBuffer:
    """The replay buffer; under torchrun this rank's shard (``replay_capacity / world``)."""
    world, rank = (1, 0) if group is None else (group.world, group.rank)
    capacity = max(settings.replay_capacity // world, 1)
    return ReplayBuffer(capacity, recent_window=capacity // 10,
                        seed=settings.finetune_seed + rank)


def follow_finetune(settings: Settings, group: Group) -> int:
    """A rank other than 0: take rank 0's model, then train every round it sends; the count."""
    recommender = weights.load(group.broadcast(None), device=group.device)
    tuner = _tuner(settings, recommender, group)
    try:
        return tuner.follow(_buffer(settings, group))
    finally:
        group.close()


def build_finetune_run(settings: Settings, *, clip: tuple[float, float] | None = None,
                       register_target: bool = True, resume: bool = True,
                       group: Group | None = None) -> FineTuneRun:
    """Connect a Kafka-fed fine-tune worker that publishes deep versions and serves /metrics.

    With ``resume`` the model warm-starts from the deep model's ``production`` (else
    ``candidate``, else ``latest``) version when it is of the same kind. Drift alarms are
    read from the online model's and the deep model's store events. Every option comes
    from ``settings`` (:class:`~lifelong.config.Settings`: flag, environment, default).
    With ``group`` (rank 0 of a torchrun job) the model is sent to the other ranks and every
    round is trained data-parallel with them (the replay buffer is this rank's shard).

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
    if group is not None:
        group.broadcast(weights.dump(recommender))  # the other ranks start from this model
        log.info("rank 0 of %d: DDP on %s (%s), global batch %d", group.world,
                 group.device, group.backend, opts.batch_size)
    tuner = _tuner(settings, recommender, group)
    buffer = _buffer(settings, group)
    metrics_registry = CollectorRegistry()
    metrics = FineTuneMetrics(metrics_registry, model=model)
    server = serve_metrics(settings, metrics_registry, f"lifelong-finetune-{model}", model,
                           register_target=register_target)

    def on_lag(topic: str, partition: int, lag: int) -> None:
        metrics.lag.labels(model, topic, str(partition)).set(lag)

    topics = [settings.topic] + ([settings.erasure_topic] if settings.erasure_topic else [])
    source = KafkaSource(bootstrap, topics, opts.finetune_group, on_lag=on_lag,
                         client_id="lifelong-finetune", **settings.kafka_client_config())
    alarms = StoreAlarms(registry, [settings.model, model]).start()
    worker = FineTuneWorker(
        source, tuner, buffer, publisher,
        gate=Gate(opts.max_regression, opts.max_old_regression),
        round_every_events=opts.round_every_events,
        round_every_seconds=opts.round_every_seconds, holdout_share=opts.holdout_share,
        min_fresh=opts.min_fresh, metrics=metrics, alarms=alarms,
        quality=QualityGates.from_env_value(settings.quality),
        pseudonymizer=Pseudonymizer.from_env(), erasure_topic=settings.erasure_topic or None,
        replay_max_age=opts.replay_max_age_seconds or None,
        tracker=RankingTracker(k=10) if ranking else None,
        weight=RankingTask().weight if ranking else None)
    return FineTuneRun(worker, source, alarms, server, metrics_registry, registry, publisher,
                       model, resumed, group)
