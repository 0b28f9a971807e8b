"""Freshness end to end: the learner records and observes, the version carries the newest
event time, each subscriber observes published -> loaded and event time -> served."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from consumers.publisher import RegistryPublisher
from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from model_store.registry import Registry
from model_store.signing import Signer
from model_store.subscriber import Subscriber
from monitoring.freshness import (
    ATTRIBUTE,
    NEWEST_EVENT_KEY,
    EventTime,
    FreshnessMetrics,
    LearnerFreshness,
    version_metadata,
)
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource

KEY = b"0123456789abcdef-test-key"


def sample(reg, name, **labels):
    return reg.get_sample_value(name, labels)


def test_learner_side_observes_both_steps_with_its_clock():
    reg, now = CollectorRegistry(), [100.0]
    learner = OnlineLearner("Baseline")
    fresh = LearnerFreshness.for_learner(learner, FreshnessMetrics(reg, model="m"),
                                         clock=lambda: now[0], sample_every=1)
    for ts in (90.0, 95.0, 80.0):  # out of order: the newest is kept
        fresh.learned(ts)
        now[0] += 1.0
    fresh.published()
    fresh.published()  # nothing learned since: nothing observed
    assert sample(reg, "lifelong_freshness_event_to_learned_seconds_sum", model="m") == (
        10.0 + 6.0 + 22.0)
    assert sample(reg, "lifelong_freshness_learned_to_published_seconds_count", model="m") == 1
    assert sample(reg, "lifelong_freshness_learned_to_published_seconds_sum", model="m") == 3.0
    assert version_metadata(learner) == {NEWEST_EVENT_KEY: 95.0}
    clone = OnlineLearner.restore(learner.snapshot())  # the state travels with the learner
    assert LearnerFreshness.for_learner(clone).state.newest == 95.0


def test_no_metadata_before_any_event():
    learner = OnlineLearner("Baseline")
    assert version_metadata(learner) == {}
    setattr(learner, ATTRIBUTE, EventTime())
    assert version_metadata(learner) == {}


def test_published_versions_carry_the_newest_event_and_subscribers_observe_it():
    registry = Registry.from_url("memory://", signer=Signer(KEY))
    metrics = CollectorRegistry()
    learner = OnlineLearner("Baseline")
    events = [Event(f"e{i}", f"u{i % 7}", f"i{i % 5}", "rating", 3.0, 1000.0 + i)
              for i in range(300)]
    worker = LearnerWorker(
        ListSource([encode(e) for e in events], batch_size=100), learner, ListDeadLetters(),
        publisher=RegistryPublisher(registry, "m"), publish_every_events=100,
        freshness=LearnerFreshness.for_learner(learner, FreshnessMetrics(metrics, model="m")))
    stats = worker.run()
    assert stats.versions == [1, 2, 3]
    assert [registry.get("m", n).extra[NEWEST_EVENT_KEY] for n in stats.versions] == [
        1099.0, 1199.0, 1299.0]
    # every 10th event is observed (the 1st, 11th, ...)
    assert sample(metrics, "lifelong_freshness_event_to_learned_seconds_count", model="m") == 30
    assert sample(metrics, "lifelong_freshness_learned_to_published_seconds_count",
                  model="m") == 3

    served = CollectorRegistry()
    with Subscriber(registry, "m", metrics_registry=served) as sub:
        assert sub.wait_for_version(3, timeout=5)
        labels = {"model": "m", "alias": "latest"}
        assert sample(served, "lifelong_freshness_served_event_timestamp_seconds",
                      **labels) == 1299.0
        assert sample(served, "lifelong_freshness_published_to_loaded_seconds_count",
                      **labels) == 1
        age = sample(served, "lifelong_freshness_event_to_served_seconds_sum", **labels)
        assert age > 1_000_000  # the events are from 1970: event time is the data's age
        loaded = sample(served, "lifelong_freshness_published_to_loaded_seconds_sum", **labels)
        assert 0.0 <= loaded < 5.0


def test_a_version_without_event_time_is_still_counted_as_loaded():
    registry = Registry.from_url("memory://", signer=Signer(KEY))
    registry.publish("m", b"1.0", format="const")
    served = CollectorRegistry()
    with Subscriber(registry, "m", metrics_registry=served, loader=lambda v, data: data) as sub:
        assert sub.wait_for_version(1, timeout=5)
    labels = {"model": "m", "alias": "latest"}
    assert sample(served, "lifelong_freshness_published_to_loaded_seconds_count", **labels) == 1
    assert sample(served, "lifelong_freshness_event_to_served_seconds_count", **labels) is None
