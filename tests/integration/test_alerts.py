"""The packaged rules on the real Prometheus: installed by ``services up``, evaluated, alerting.

A fake learner and fine-tuner (``prometheus_client`` on a fresh registry, on a free loopback
port) are scraped for a few seconds. The alert driven here is ``LifelongFineTuneForgetting``:
it reads a gauge, so it goes ``pending`` at the first evaluation and disappears as soon as
the target is removed (a rate-based alert such as ``LifelongInvalidEventsHigh`` would keep
its 5 m window after the test and fire later on the shared Prometheus). The invalid share is
checked through its recording rule, kept under the alert's 5% threshold for the same reason.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml
from prometheus_client import CollectorRegistry

from deploy import services
from deploy.services import Endpoint
from monitoring.exposition import MetricsServer
from monitoring.metrics import FineTuneMetrics, LearnerMetrics
from monitoring.promql import wait_for_value
from monitoring.rules import rules_path

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0


def _get(base: str, path: str) -> dict:
    with urllib.request.urlopen(f"{base.rstrip('/')}{path}", timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]


@pytest.fixture()
def with_rules(prometheus: Endpoint) -> Endpoint:
    """The Prometheus of the tests, after ``services up`` installed and reloaded the rules."""
    if prometheus.origin != "env":  # one from PROMETHEUS_URL must load the rules itself
        (endpoint,) = services.up(["prometheus"])
        assert endpoint.address == prometheus.address
    return prometheus


@pytest.fixture()
def fake_workers(unique: str) -> Iterator[tuple[str, str]]:
    """A learner (2% invalid, publishing) and a forgetting fine-tuner, scraped as one job."""
    model, deep = f"alerttest-{unique}", f"alerttest-{unique}-deep"
    registry = CollectorRegistry()
    learner = LearnerMetrics(registry, model=model, topic=f"events-{unique}")
    finetune = FineTuneMetrics(registry, model=deep)
    finetune.bwt.set(0.2)  # > 0.05: LifelongFineTuneForgetting
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            learner.consumed.inc(50)
            learner.learned.inc(49)
            learner.invalid("schema").inc(1)
            learner.published.set(time.time())  # a fresh model: LifelongModelStale stays quiet
            stop.wait(0.1)

    thread = threading.Thread(target=stream, name=f"fake-learner-{unique}", daemon=True)
    thread.start()
    server = MetricsServer(registry, port=0)
    job = f"alerttest-{unique}"
    services.add_scrape_target(job, server.target)
    try:
        yield model, deep
    finally:
        services.remove_scrape_target(job)
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_lifelong_rule_groups_are_loaded(with_rules: Endpoint) -> None:
    expected = {g["name"]: {r.get("alert") or r["record"] for r in g["rules"]}
                for g in yaml.safe_load(rules_path().read_text())["groups"]}
    loaded = {g["name"]: {r["name"] for r in g["rules"]}
              for g in _get(with_rules.address, "/api/v1/rules")["groups"]}
    for name, rules in expected.items():
        assert name in loaded, (f"rule group {name} is not loaded by {with_rules.address} "
                                f"(loaded: {sorted(loaded)})")
        assert loaded[name] == rules, name
    bad = [(r["name"], r.get("lastError")) for g in _get(with_rules.address, "/api/v1/rules")
           ["groups"] if g["name"] in expected for r in g["rules"] if r.get("health") == "err"]
    assert not bad, bad


def test_an_alert_goes_pending_and_recording_rules_evaluate(
        with_rules: Endpoint, fake_workers: tuple[str, str]) -> None:
    model, deep = fake_workers
    started = time.monotonic()
    state = None
    while time.monotonic() - started < DEADLINE_S:
        alerts = _get(with_rules.address, "/api/v1/alerts")["alerts"]
        mine = [a for a in alerts if a["labels"].get("alertname") == "LifelongFineTuneForgetting"
                and a["labels"].get("model") == deep]
        if mine:
            state = mine[0]["state"]
            assert mine[0]["labels"]["severity"] == "warning"
            assert deep in mine[0]["annotations"]["summary"]
            break
        time.sleep(0.5)
    assert state in {"pending", "firing"}, (
        f"LifelongFineTuneForgetting for {deep} not pending within {DEADLINE_S:.0f} s")

    expr = f'model:lifelong_learner_events_invalid:ratio_rate5m{{model="{model}"}}'
    share = wait_for_value(with_rules.address, expr, lambda v: 0.01 < v < 0.03,
                           timeout=max(1.0, DEADLINE_S - (time.monotonic() - started)))
    assert share is not None and 0.01 < share < 0.03, f"invalid share of {model}: {share}"
    others = [a["labels"]["alertname"] for a in _get(with_rules.address, "/api/v1/alerts")["alerts"]
              if a["labels"].get("model") in {model, deep}
              and a["labels"]["alertname"] != "LifelongFineTuneForgetting"]
    assert not others, f"a healthy fake learner raised {others}"
