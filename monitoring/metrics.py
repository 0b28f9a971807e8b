"""Metric definitions for the learners, on a registry passed in (never the global one).

Names follow ``lifelong_<subsystem>_<name>_<unit>``; labels are bounded (model, topic,
partition, reason kind), never user, item or event ids.

>>> from prometheus_client import CollectorRegistry
>>> reg = CollectorRegistry()
>>> m = LearnerMetrics(reg, model="reco", topic="events")
>>> m.consumed.inc(3)
>>> reg.get_sample_value("lifelong_learner_events_consumed_total",
...                      {"model": "reco", "topic": "events"})
3.0
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from stream.quality import QUARANTINE_REASONS

__all__ = [
    "IMPRESSION_COUNTERS",
    "INVALID_KINDS",
    "LATENCY_BUCKETS",
    "RANKING_GAUGES",
    "ROUND_BUCKETS",
    "ROUND_TRIGGERS",
    "FineTuneMetrics",
    "ImpressionJoinCollector",
    "LearnerMetrics",
    "RankingQualityCollector",
]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
ROUND_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Label values created at 0, so panels and increase() see the first one (``Rejected.kind``).
INVALID_KINDS = ("malformed", "encoding", "too_large", "schema")
ROUND_TRIGGERS = ("events", "time", "drift", "final", "backlog")


class LearnerMetrics:
    """Every metric the online learner exports, bound to one model and topic."""

    def __init__(self, registry: CollectorRegistry, *, model: str, topic: str):
        self.registry = registry
        self.model = model
        self.topic = topic
        mt = ("model", "topic")
        self._consumed = Counter(
            "lifelong_learner_events_consumed", "Events read from the source (valid or not).",
            mt, registry=registry)
        self._learned = Counter(
            "lifelong_learner_events_learned", "Valid events the model learned from.",
            mt, registry=registry)
        self._invalid = Counter(
            "lifelong_learner_events_invalid",
            "Records refused by validation and sent to the dead-letter queue, by reason kind.",
            (*mt, "reason"), registry=registry)
        self._duplicate = Counter(
            "lifelong_learner_events_duplicate", "Events dropped because their event_id was seen.",
            mt, registry=registry)
        self._rmse = Gauge(
            "lifelong_learner_prequential_rmse", "Prequential RMSE since start.",
            ("model",), registry=registry)
        self._mae = Gauge(
            "lifelong_learner_prequential_mae", "Prequential MAE since start.",
            ("model",), registry=registry)
        self._rolling_rmse = Gauge(
            "lifelong_learner_prequential_rolling_rmse",
            "Prequential RMSE over the most recent window of events.",
            ("model",), registry=registry)
        self._rolling_mae = Gauge(
            "lifelong_learner_prequential_rolling_mae",
            "Prequential MAE over the most recent window of events.",
            ("model",), registry=registry)
        self._version = Gauge(
            "lifelong_model_version", "Latest model version published by this learner.",
            ("model",), registry=registry)
        self._published = Gauge(
            "lifelong_model_published_timestamp_seconds",
            "Unix time of the last publish (model age = time() - this).",
            ("model",), registry=registry)
        self._publish_duration = Histogram(
            "lifelong_model_publish_duration_seconds",
            "Time to serialise, sign and store a model version.",
            ("model",), buckets=LATENCY_BUCKETS, registry=registry)
        self._publish_failures = Counter(
            "lifelong_model_publish_failures",
            "Publishes that failed (store down); learning went on and they were retried.",
            ("model",), registry=registry)
        self._latency = Histogram(
            "lifelong_learner_event_to_model_latency_seconds",
            "From the broker append time of an event to the model having learned it.",
            ("model",), buckets=LATENCY_BUCKETS, registry=registry)
        self._quarantined = Counter(
            "lifelong_learner_events_quarantined",
            "Valid events a data-quality gate refused (sent to the quarantine topic, never "
            "learned), by reason (value_range, ts_future, ts_floor, user_rate).",
            (*mt, "reason"), registry=registry)
        self._publish_refused = Counter(
            "lifelong_model_publish_refused",
            "Publishes refused because a score or parameter was NaN or infinite.",
            ("model",), registry=registry)
        self._commit_failures = Counter(
            "lifelong_learner_commit_failures",
            "Kafka offset commits after a publish that failed even after retries (broker "
            "outage, rebalance); the version holds the offsets, learning goes on.",
            ("model",), registry=registry)
        self._drift_alarms = Counter(
            "lifelong_learner_drift_alarms", "Alarms raised because the prequential error rose.",
            ("model",), registry=registry)
        self.lag = Gauge(
            "lifelong_learner_consumer_lag", "Records behind the partition's high watermark.",
            ("model", "topic", "partition"), registry=registry)
        self.consumed = self._consumed.labels(model, topic)
        self.learned = self._learned.labels(model, topic)
        self.duplicate = self._duplicate.labels(model, topic)
        self.rmse = self._rmse.labels(model)
        self.mae = self._mae.labels(model)
        self.rolling_rmse = self._rolling_rmse.labels(model)
        self.rolling_mae = self._rolling_mae.labels(model)
        self.version = self._version.labels(model)
        self.published = self._published.labels(model)
        self.publish_duration = self._publish_duration.labels(model)
        self.latency = self._latency.labels(model)
        self.publish_failures = self._publish_failures.labels(model)
        self.drift_alarms = self._drift_alarms.labels(model)
        self.publish_refused = self._publish_refused.labels(model)
        self.commit_failures = self._commit_failures.labels(model)
        for kind in INVALID_KINDS:
            self.invalid(kind)
        for kind in QUARANTINE_REASONS:  # at 0, so the first quarantined event is an increase
            self.quarantined(kind)

    def invalid(self, reason_kind: str) -> Counter:
        """The invalid-events counter for one reason kind (``schema``, ``malformed``...)."""
        return self._invalid.labels(self.model, self.topic, reason_kind)

    def quarantined(self, reason_kind: str) -> Counter:
        """The quarantined-events counter for one reason kind (``value_range``...)."""
        return self._quarantined.labels(self.model, self.topic, reason_kind)


class FineTuneMetrics:
    """Every metric the fine-tune worker (the slow learner) exports, bound to one model.

    >>> reg = CollectorRegistry()
    >>> m = FineTuneMetrics(reg, model="reco-deep")
    >>> m.rounds("drift").inc()
    >>> reg.get_sample_value("lifelong_finetune_rounds_total",
    ...                      {"model": "reco-deep", "trigger": "drift"})
    1.0
    """

    def __init__(self, registry: CollectorRegistry, *, model: str):
        self.registry = registry
        self.model = model
        m = ("model",)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, m, registry=registry).labels(model)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, m, registry=registry).labels(model)

        self._rounds = Counter(
            "lifelong_finetune_rounds", "Fine-tune rounds completed, by what triggered them "
            "(events, time, drift, final, backlog).", (*m, "trigger"), registry=registry)
        self.round_duration = Histogram(
            "lifelong_finetune_round_duration_seconds",
            "Wall time of a round: train, evaluate, gate and publish.", m,
            buckets=ROUND_BUCKETS, registry=registry).labels(model)
        self.samples_per_second = gauge(
            "lifelong_finetune_samples_per_second",
            "Training throughput of the last round (fresh + replayed samples x epochs).")
        self.loss = gauge("lifelong_finetune_loss",
                          "Mean squared error trained on in the last round.")
        self.recent_rmse = gauge("lifelong_finetune_recent_rmse",
                                 "Candidate RMSE on the held-back recent slice, last round.")
        self.old_rmse = gauge("lifelong_finetune_old_rmse",
                              "Candidate RMSE on older held-back slices (mean), last round.")
        self.bwt = gauge("lifelong_finetune_bwt", "Backward transfer on the error (GEM): "
                         "mean rise of old-slice error since learned; positive = forgetting.")
        self.replay_size = gauge("lifelong_replay_buffer_samples",
                                 "Samples held in the replay buffer.")
        self.version = gauge("lifelong_finetune_version",
                             "Last candidate version published by the fine-tuner.")
        self.promotions = counter("lifelong_finetune_promotions",
                                  "Candidates the gate promoted to production.")
        self.rejections = counter("lifelong_finetune_rejections",
                                  "Candidates the gate kept out of production.")
        self.failures = counter("lifelong_finetune_round_failures",
                                "Rounds that failed (their events are retried next round).")
        self.consumed = counter("lifelong_finetune_events_consumed",
                                "Records read by the fine-tune worker (valid or not).")
        self.invalid = counter("lifelong_finetune_events_invalid",
                               "Records that failed validation (the online learner DLQs them).")
        self.duplicate = counter("lifelong_finetune_events_duplicate",
                                 "Events dropped because their event_id was seen.")
        self.drift_rounds = counter("lifelong_finetune_drift_triggered_rounds",
                                    "Rounds started because of a drift alarm.")
        self.lag = Gauge(
            "lifelong_finetune_consumer_lag", "Records behind the partition's high watermark "
            "(the fine-tune consumer group).", ("model", "topic", "partition"), registry=registry)
        for trigger in ROUND_TRIGGERS:
            self.rounds(trigger)

    def rounds(self, trigger: str) -> Counter:
        """The rounds counter for one trigger (``events``, ``time``, ``drift``, ...)."""
        return self._rounds.labels(self.model, trigger)


#: ``lifelong_learner_impression_<name>_total``: help text of each impression-join counter.
IMPRESSION_COUNTERS: dict[str, str] = {
    "impressions": "Impressions taken into the join state (duplicates not counted).",
    "joined": "Positive events (click, cart, purchase) joined to the impression that showed "
              "them; each shown slot at most once.",
    "expired": "Impressions that left the join window (their unjoined items became negatives).",
    "negative": "Negative samples: shown items not clicked before their impression expired.",
    "evicted": "Impressions dropped from a full join state before expiring (no negatives).",
    "unmatched": "Positive events that no live impression showed (organic or too late).",
    "repeat": "Positive events on a slot already joined (funnel steps, redeliveries).",
    "duplicate": "Impressions ignored because their impression_id was seen before.",
}


class ImpressionJoinCollector:
    """Export an impression join's counters, read when scraped (not copied after each batch).

    ``counters()`` returns the join's current counter mapping (e.g. ``lambda:
    join.counters``, so a join restored from a checkpoint is picked up).

    >>> reg = CollectorRegistry()
    >>> state = {"joined": 3, "negative": 7}
    >>> _ = ImpressionJoinCollector(lambda: state, model="reco", registry=reg)
    >>> reg.get_sample_value("lifelong_learner_impression_joined_total", {"model": "reco"})
    3.0
    """

    def __init__(self, counters: Callable[[], Mapping[str, int]], *, model: str,
                 registry: CollectorRegistry | None = None) -> None:
        self.counters = counters
        self.model = model
        if registry is not None:
            registry.register(self)  # type: ignore[arg-type]

    def describe(self) -> list[Any]:
        """The metric families (without samples), so registration checks names."""
        return [CounterMetricFamily(f"lifelong_learner_impression_{name}", doc,
                                    labels=("model",)) for name, doc in
                IMPRESSION_COUNTERS.items()]

    def collect(self) -> Iterator[CounterMetricFamily]:
        """One counter family per join counter, labelled by model."""
        values = self.counters()
        for name, doc in IMPRESSION_COUNTERS.items():
            family = CounterMetricFamily(f"lifelong_learner_impression_{name}", doc,
                                         labels=("model",))
            family.add_metric([self.model], float(values.get(name, 0)))
            yield family


#: ``lifelong_learner_ranking_<name>_ratio``: help text of each rolling ranking figure.
RANKING_GAUGES: dict[str, tuple[str, str]] = {
    "hit": ("rolling_hr", "Rolling prequential hit ratio at k (HR@k): share of the last "
                          "window of ranked events whose item was in the top k."),
    "ndcg": ("rolling_ndcg", "Rolling prequential NDCG@k (log2 discount) over the last "
                             "window of ranked events."),
    "coverage": ("rolling_coverage", "Rolling coverage@k: share of known items that appeared "
                                     "in any top-k list over the last window."),
}


class RankingQualityCollector:
    """Export a ranking learner's rolling HR@k, NDCG@k and coverage@k, read when scraped.

    ``score()`` returns the learner's current
    :class:`~learning.ranking_metrics.RankingScore` (``lambda: worker.learner.score()``).
    Gauges are labelled by model and k; nothing is exported before the first ranked event,
    and ``lifelong_learner_ranking_evaluated_total`` counts the ranked events. A score read
    while the worker updates it (a deque changing under the read) falls back to the last one.

    >>> from learning.ranking_metrics import RankingScore
    >>> reg = CollectorRegistry()
    >>> s = RankingScore(n=40, k=10, hr=0.3, ndcg=0.2, coverage=0.5, intra_list_diversity=None,
    ...                  novelty=1.0, rolling_hr=0.25, rolling_ndcg=0.1, rolling_coverage=0.4)
    >>> _ = RankingQualityCollector(lambda: s, model="reco", registry=reg)
    >>> reg.get_sample_value("lifelong_learner_ranking_hit_ratio", {"model": "reco", "k": "10"})
    0.25
    """

    def __init__(self, score: Callable[[], Any], *, model: str,
                 registry: CollectorRegistry | None = None) -> None:
        self.score = score
        self.model = model
        self._last: Any = None
        if registry is not None:
            registry.register(self)  # type: ignore[arg-type]

    def _families(self) -> tuple[list[GaugeMetricFamily], CounterMetricFamily]:
        gauges = [GaugeMetricFamily(f"lifelong_learner_ranking_{name}_ratio", doc,
                                    labels=("model", "k"))
                  for name, (_, doc) in RANKING_GAUGES.items()]
        evaluated = CounterMetricFamily(
            "lifelong_learner_ranking_evaluated",
            "Events ranked under the prequential protocol (known user, known item new to "
            "the user).", labels=("model",))
        return gauges, evaluated

    def describe(self) -> list[Any]:
        """The metric families (without samples), so registration checks names."""
        gauges, evaluated = self._families()
        return [*gauges, evaluated]

    def collect(self) -> Iterator[Any]:
        """The rolling figures at k, and the count of ranked events."""
        with contextlib.suppress(RuntimeError):  # changed while read: keep the last one
            self._last = self.score()
        gauges, evaluated = self._families()
        score = self._last
        if score is not None and score.n:
            for family, (attribute, _) in zip(gauges, RANKING_GAUGES.values(), strict=True):
                family.add_metric([self.model, str(score.k)], float(getattr(score, attribute)))
        evaluated.add_metric([self.model], float(score.n if score is not None else 0))
        yield from gauges
        yield evaluated
