from __future__ import annotations

from prometheus_client import CollectorRegistry

from consumers.impressions import COUNTERS, ImpressionJoin
from monitoring.metrics import IMPRESSION_COUNTERS, ImpressionJoinCollector
from stream.impression import Impression
from stream.schema import Event


def test_counters_are_read_at_scrape_time_and_follow_a_restored_join() -> None:
    assert tuple(IMPRESSION_COUNTERS) == COUNTERS
    reg = CollectorRegistry()
    holder = {"join": ImpressionJoin(window=10.0)}
    ImpressionJoinCollector(lambda: holder["join"].counters, model="reco", registry=reg)

    def value(name: str) -> float | None:
        return reg.get_sample_value(f"lifelong_learner_impression_{name}_total",
                                    {"model": "reco"})

    assert value("joined") == 0.0
    join = holder["join"]
    join.add(Impression("a", "u", ("x", "y"), 0.0))
    join.observe(Event("e", "u", "x", "click", 1.0, 1.0))
    join.observe(Event("f", "v", "z", "view", 1.0, 20.0))
    assert (value("joined"), value("expired"), value("negative")) == (1.0, 1.0, 1.0)
    holder["join"] = ImpressionJoin(window=10.0, state=join.snapshot())
    holder["join"].add(Impression("b", "u", ("q",), 21.0))
    assert value("impressions") == 2.0
