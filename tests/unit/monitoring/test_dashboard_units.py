"""Panels that mix units draw each query in its own: seconds in ``s``, counts never in ``s``.

Found by running every panel against a live Prometheus: publish failures were drawn as
seconds and the subscribers' p99 load time as a plain number. A query's unit is read from
its metric names (``*_seconds`` without ``*_total``: seconds; ``*_total``: a count or rate)
and the unit it is drawn in is its override's (by query refId), or the panel's.
"""

from __future__ import annotations

import json

import pytest

from monitoring.rules import dashboard_path


def _targets():
    dashboard = json.loads(dashboard_path().read_text())
    for panel in dashboard["panels"]:
        default = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        units = {}
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            matcher = override["matcher"]
            assert matcher["id"] == "byFrameRefID", (panel["title"], matcher)
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    units[matcher["options"]] = prop["value"]
        refs = {t["refId"] for t in panel.get("targets", [])}
        assert set(units) <= refs, f"{panel['title']}: override for a missing query"
        for target in panel.get("targets", []):
            yield panel["title"], target, units.get(target["refId"], default)


TARGETS = list(_targets())


@pytest.mark.parametrize(("title", "target", "unit"), TARGETS,
                         ids=[f"{t}-{q['refId']}" for t, q, _ in TARGETS])
def test_each_query_is_drawn_in_its_unit(title, target, unit):
    expr = target["expr"]
    if "_seconds" in expr and "_total" not in expr:
        assert unit == "s", f"{title} {target['refId']}: seconds drawn as {unit!r}: {expr}"
    if "_total" in expr:
        assert unit != "s", f"{title} {target['refId']}: a count drawn in seconds: {expr}"


def test_the_checks_see_the_panels_that_mix_units():
    mixed = {title for title, _, unit in TARGETS} & {
        "Publish duration and failures", "Subscriber swaps and load time"}
    assert len(mixed) == 2


def test_labelled_counters_start_at_zero():
    """A counter whose label appears only on the first failure shows "No data" until then,
    and increase() misses that first failure: every known label value starts at 0."""
    from prometheus_client import CollectorRegistry

    from model_store.metrics import FAILURE_REASONS
    from model_store.registry import Registry
    from model_store.subscriber import Subscriber
    from monitoring.metrics import INVALID_KINDS, ROUND_TRIGGERS, FineTuneMetrics, LearnerMetrics

    reg = CollectorRegistry()
    LearnerMetrics(reg, model="m", topic="t")
    FineTuneMetrics(reg, model="m-deep")
    Subscriber(Registry.from_url("memory://", signer=None), "m", metrics_registry=reg)
    for kind in INVALID_KINDS:
        assert reg.get_sample_value("lifelong_learner_events_invalid_total",
                                    {"model": "m", "topic": "t", "reason": kind}) == 0.0
    for trigger in ROUND_TRIGGERS:
        assert reg.get_sample_value("lifelong_finetune_rounds_total",
                                    {"model": "m-deep", "trigger": trigger}) == 0.0
    for reason in FAILURE_REASONS:
        assert reg.get_sample_value("lifelong_subscriber_load_failures_total",
                                    {"model": "m", "reason": reason}) == 0.0
    assert set(FAILURE_REASONS) >= {"integrity", "unsigned", "connection", "loader"}
