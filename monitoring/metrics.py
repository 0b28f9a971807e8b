"""Metric definitions for the online learner, on a registry passed in (never the global one).

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

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS", "LearnerMetrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


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
        self._latency = Histogram(
            "lifelong_learner_event_to_model_latency_seconds",
            "From the broker append time of an event to the model having learned it.",
            ("model",), buckets=LATENCY_BUCKETS, registry=registry)
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
        self.drift_alarms = self._drift_alarms.labels(model)

    def invalid(self, reason_kind: str) -> Counter:
        """The invalid-events counter for one reason kind (``schema``, ``malformed``...)."""
        return self._invalid.labels(self.model, self.topic, reason_kind)
