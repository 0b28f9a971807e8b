"""Freshness end to end: how old is what a service serves, and where the time goes.

Four histograms, in seconds, each observed where its second step happens:

* ``event time -> learned`` (the learner worker: now - the event's ``ts``, for every
  ``sample_every``-th event, 10 by default: a histogram observation costs about 2 us,
  a tenth of learning one event);
* ``learned -> published`` (per version: how long the oldest event learned since the
  previous version waited for this one);
* ``published -> loaded`` (each subscriber, per swap: now - the version's ``created``);
* ``event time -> served`` (each subscriber, per swap: now - the newest event inside the
  version, which the learner records in the version's metadata as ``newest_event_ts``).

Event time is the producer's ``ts``: on a replay of old data the first and last are the
age of the data, not a delay of the pipeline. The gauge
``lifelong_freshness_served_event_timestamp_seconds`` lets an alert compute the age of
what is served *now* (``time() - x``), which grows between swaps.

>>> from prometheus_client import CollectorRegistry
>>> reg = CollectorRegistry()
>>> now = [1000.0]
>>> learner = type("L", (), {})()
>>> fresh = LearnerFreshness.for_learner(learner, FreshnessMetrics(reg, model="reco"),
...                                      clock=lambda: now[0])
>>> fresh.learned(990.0); now[0] = 1004.0; fresh.published()
>>> version_metadata(learner)
{'newest_event_ts': 990.0}
>>> reg.get_sample_value("lifelong_freshness_learned_to_published_seconds_sum",
...                      {"model": "reco"})
4.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram

__all__ = ["ATTRIBUTE", "FRESHNESS_BUCKETS", "NEWEST_EVENT_KEY", "EventTime",
           "FreshnessMetrics", "LearnerFreshness", "ServingFreshness", "version_metadata"]

FRESHNESS_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200,
                     21600, 86400, 604800)
NEWEST_EVENT_KEY = "newest_event_ts"  # in a version's metadata (``ModelVersion.extra``)
ATTRIBUTE = "event_time"  # the learner attribute that carries :class:`EventTime`


class EventTime:
    """The newest event time a learner has learned (plain state, pickled with it)."""

    def __init__(self) -> None:
        self.newest = -math.inf


def version_metadata(learner: Any) -> dict[str, float]:
    """What a publisher adds to the version's metadata: ``newest_event_ts`` when known."""
    state = getattr(learner, ATTRIBUTE, None)
    if isinstance(state, EventTime) and math.isfinite(state.newest):
        return {NEWEST_EVENT_KEY: state.newest}
    return {}


class FreshnessMetrics:
    """The learner side: event time -> learned, learned -> published, per model."""

    def __init__(self, registry: CollectorRegistry, *, model: str):
        self.model = model
        self.event_to_learned = Histogram(
            "lifelong_freshness_event_to_learned_seconds",
            "From an event's own time (ts) to the online model having learned it "
            "(every 10th event by default).",
            ("model",), buckets=FRESHNESS_BUCKETS, registry=registry).labels(model)
        self.learned_to_published = Histogram(
            "lifelong_freshness_learned_to_published_seconds",
            "Per version: how long the oldest event learned since the previous version "
            "waited to be published.", ("model",), buckets=FRESHNESS_BUCKETS,
            registry=registry).labels(model)


class LearnerFreshness:
    """The learner worker's hook: call :meth:`learned` per event, :meth:`published` per version.

    ``metrics`` may be None (the newest event time is still recorded for the metadata);
    every ``sample_every``-th event is observed in ``event_to_learned``.
    """

    def __init__(self, state: EventTime, metrics: FreshnessMetrics | None = None, *,
                 clock: Callable[[], float] = time.time, sample_every: int = 10):
        if sample_every < 1:
            raise ValueError(f"sample_every={sample_every}: expected a positive count")
        self.state = state
        self.metrics = metrics
        self.sample_every = sample_every
        self._clock = clock
        self._first_unpublished: float | None = None
        self._skip = 0

    @classmethod
    def for_learner(cls, learner: Any, metrics: FreshnessMetrics | None = None, *,
                    clock: Callable[[], float] = time.time,
                    sample_every: int = 10) -> LearnerFreshness:
        """Record into ``learner`` (resuming the :class:`EventTime` it carries, if any)."""
        state = getattr(learner, ATTRIBUTE, None)
        if not isinstance(state, EventTime):
            state = EventTime()
            setattr(learner, ATTRIBUTE, state)
        return cls(state, metrics, clock=clock, sample_every=sample_every)

    def learned(self, event_ts: float) -> None:
        """One event with time ``event_ts`` was learned just now."""
        if event_ts > self.state.newest:
            self.state.newest = event_ts
        if self._first_unpublished is None:
            self._first_unpublished = self._clock()
        self._skip -= 1
        if self._skip <= 0 and self.metrics is not None:
            self._skip = self.sample_every
            self.metrics.event_to_learned.observe(max(0.0, self._clock() - event_ts))

    def learned_many(self, stamps: Sequence[float]) -> None:
        """:meth:`learned` for a batch of event times, all learned just now (one clock read).

        The same events are sampled as one :meth:`learned` at a time would sample:

        >>> class Obs(list):
        ...     def observe(self, x): self.append(x)
        >>> m = type("M", (), {"event_to_learned": Obs(), "learned_to_published": Obs()})()
        >>> one, many = (LearnerFreshness(EventTime(), m, clock=lambda: 100.0, sample_every=4)
        ...              for _ in range(2))
        >>> for t in range(11):
        ...     one.learned(float(t))
        >>> first = list(m.event_to_learned); m.event_to_learned.clear()
        >>> many.learned_many([0.0, 1.0, 2.0]); many.learned_many([float(t) for t in range(3, 11)])
        >>> first == list(m.event_to_learned) == [100.0, 96.0, 92.0], many._skip == one._skip
        (True, True)
        """
        n = len(stamps)
        if not n:
            return
        top = max(stamps)
        if top > self.state.newest:
            self.state.newest = top
        now = self._clock()
        if self._first_unpublished is None:
            self._first_unpublished = now
        every, first = self.sample_every, max(self._skip - 1, 0)
        if self.metrics is None or first >= n:
            self._skip -= n
            return
        observe = self.metrics.event_to_learned.observe
        for k in range(first, n, every):
            observe(max(0.0, now - stamps[k]))
        self._skip = every - (n - 1 - first) % every

    def published(self) -> None:
        """A version covering everything learned so far was published just now."""
        if self._first_unpublished is not None and self.metrics is not None:
            self.metrics.learned_to_published.observe(
                max(0.0, self._clock() - self._first_unpublished))
        self._first_unpublished = None


def _family(kind: type, name: str, doc: str, registry: CollectorRegistry, **kw: Any) -> Any:
    try:
        return kind(name, doc, ("model", "alias"), registry=registry, **kw)
    except ValueError:  # another subscriber in this process registered it: share it
        existing = registry._names_to_collectors.get(name)
        if not isinstance(existing, kind):
            raise
        return existing


class ServingFreshness:
    """The subscriber side: published -> loaded and event time -> served, per model, alias.

    Several subscribers on one registry share the families.

    >>> reg = CollectorRegistry()
    >>> serving = ServingFreshness(reg, clock=lambda: 1010.0)
    >>> v = type("V", (), {"created": 1000.0, "extra": {"newest_event_ts": 900.0}})()
    >>> serving.loaded("reco", "latest", v)
    >>> reg.get_sample_value("lifelong_freshness_event_to_served_seconds_sum",
    ...                      {"model": "reco", "alias": "latest"})
    110.0
    """

    def __init__(self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.time):
        self._clock = clock
        self.published_to_loaded = _family(
            Histogram, "lifelong_freshness_published_to_loaded_seconds",
            "From a version's publish to a subscriber serving it.", registry,
            buckets=FRESHNESS_BUCKETS)
        self.event_to_served = _family(
            Histogram, "lifelong_freshness_event_to_served_seconds",
            "At each swap: age of the newest event inside the version now served.", registry,
            buckets=FRESHNESS_BUCKETS)
        self.served_event = _family(
            Gauge, "lifelong_freshness_served_event_timestamp_seconds",
            "Time of the newest event inside the version served (age = time() - this).",
            registry)

    def loaded(self, model: str, alias: str, version: Any) -> None:
        """``version`` (a :class:`~model_store.records.ModelVersion`) now serves ``alias``."""
        now = self._clock()
        self.published_to_loaded.labels(model, alias).observe(max(0.0, now - version.created))
        newest = (version.extra or {}).get(NEWEST_EVENT_KEY)
        if isinstance(newest, int | float) and math.isfinite(newest):
            self.event_to_served.labels(model, alias).observe(max(0.0, now - newest))
            self.served_event.labels(model, alias).set(newest)
