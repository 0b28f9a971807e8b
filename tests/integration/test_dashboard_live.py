"""Every dashboard panel against a live Prometheus after short real runs, and the input
drift alert firing (or not) in it.

Three online learners (model ``...-drift`` with an injected shift of the event values,
model ``...-calm`` without, model ``...-rank`` learning the ranking task on a click
stream), a fine-tuner and a subscriber run against the real Kafka and Redis.
They are scraped by a private Prometheus (the real binary, on its own loopback port, with
this checkout's rule files, stopped at the end), so the rules under test are the ones here
and an alert raised for the test never lingers on the shared instance. Then every query of
monitoring/dashboards/lifelong.json must return data, and ``LifelongInputDrift`` must fire
for the drifting model only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import redis

from deploy.prometheus import prometheus_yml, remove_target, write_target
from lifelong.config import Settings
from lifelong.finetune_wiring import build_finetune_run
from lifelong.wiring import build_online_run
from model_store import Registry, Subscriber
from monitoring.exposition import MetricsServer
from monitoring.rules import dashboard_path, install_rules
from stream.admin import delete_topics
from stream.producer import EventProducer
from stream.schema import encode
from stream.synthetic import SyntheticStream
from stream.synthetic_implicit import ImplicitStream

pytestmark = pytest.mark.integration

EVENTS = 6000
CHANGE = 3000
RATE = 400.0  # events per second and stream


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, path: str, **params: str) -> dict:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}{path}{query}", timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]


@pytest.fixture(scope="module")
def private_prometheus(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.fail("the prometheus binary is required (apt-get install prometheus)",
                    pytrace=False)
    home = tmp_path_factory.mktemp("prometheus")
    targets, rules = home / "targets", home / "rules"
    targets.mkdir()
    install_rules(home, directory=rules)
    (home / "prometheus.yml").write_text(prometheus_yml(targets_dir=targets, rules_dir=rules))
    port = _free_port()
    log = (home / "prometheus.log").open("w")
    proc = subprocess.Popen([exe, f"--config.file={home / 'prometheus.yml'}",
                             f"--storage.tsdb.path={home / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (home / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "private Prometheus not ready in 30 s"
            time.sleep(0.2)
        yield url, targets
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _events(seed: int, drift: bool) -> list[bytes]:
    stream = SyntheticStream(n_events=EVENTS, drift_at=(EVENTS - 1,), seed=seed)
    out = []
    for i, event in enumerate(stream):
        if drift and i >= CHANGE:  # ratings jump up by 1.5 stars (clipped): values drift
            event = msgspec.structs.replace(event, value=min(5.0, event.value + 1.5))
        out.append(encode(event))
    return out


@pytest.fixture(scope="module")
def live_runs(kafka, redis_service, private_prometheus, tmp_path_factory) -> Iterator[dict]:
    """Learn both streams (and fine-tune and serve the drifting one); keep /metrics up."""
    import os
    import secrets

    url, targets = private_prometheus
    unique = secrets.token_hex(4)
    if not (os.environ.get("LIFELONG_SIGNING_KEY") or os.environ.get("LIFELONG_SIGNING_KEY_FILE")):
        os.environ["LIFELONG_SIGNING_KEY"] = secrets.token_hex(32)  # models must be signed
    prefix = f"it-dash-{unique}"
    names = {"drift": f"dash-{unique}-drift", "calm": f"dash-{unique}-calm",
             "rank": f"dash-{unique}-rank"}  # rank: learn --task ranking on clicks
    closers, topics, jobs = [], [], []
    try:
        runs = {}
        for kind, model in names.items():
            settings = Settings.from_env(
                kafka_bootstrap=kafka.address, redis_url=redis_service.address, prefix=prefix,
                topic=model, dlq_topic=f"{model}.dlq", group_id=model, model=model,
                publish_every_events=1000, partitions=1,
                task="ranking" if kind == "rank" else None)
            topics += [model, f"{model}.dlq"]
            run = build_online_run(settings, register_target=False, resume=False)
            closers.append(run.close)
            write_target(targets, f"learner-{model}", run.metrics_server.target,
                         {"model": model})
            jobs.append(f"learner-{model}")
            runs[kind] = (settings, run)
        settings, run = runs["drift"]
        tune = build_finetune_run(
            dataclasses.replace(settings, finetune_group=f"{settings.model}-ft",
                                round_every_events=2000, min_fresh=500, batch_size=512,
                                n_factors=8, device="cpu"),
            clip=(1.0, 5.0), register_target=False, resume=False)
        closers.append(tune.close)
        write_target(targets, f"finetune-{tune.model}", tune.metrics_server.target,
                     {"model": tune.model})
        jobs.append(f"finetune-{tune.model}")
        registry = Registry.from_url(redis_service.address, prefix=prefix)
        from prometheus_client import CollectorRegistry

        served = CollectorRegistry()
        subscriber = Subscriber(registry, settings.model, metrics_registry=served,
                                poll_interval=0.5).start()
        closers.append(subscriber.stop)
        serving = MetricsServer(served, port=0)
        closers.append(serving.close)
        write_target(targets, f"serving-{settings.model}", serving.target,
                     {"model": settings.model})
        jobs.append(f"serving-{settings.model}")

        threads = [threading.Thread(target=run.worker.run,
                                    kwargs={"max_events": EVENTS, "idle_timeout": 20},
                                    daemon=True) for _, run in runs.values()]
        threads.append(threading.Thread(target=tune.worker.run, kwargs={
            "max_events": EVENTS, "idle_timeout": 20}, daemon=True))

        def produce(topic: str, kind: str) -> None:
            # paced, so every step happens between scrapes (a burst learned before the
            # first scrape leaves rate() at 0 and its quantiles NaN)
            events = (ImplicitStream(n_events=EVENTS, seed=3).raw() if kind == "rank"
                      else _events(3, drift=kind == "drift"))
            with EventProducer(kafka.address, topic) as producer:
                producer.send_all(events, rate=RATE)

        threads += [threading.Thread(target=produce, args=(settings.topic, kind),
                                     daemon=True) for kind, (settings, _) in runs.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=240)
        assert not any(t.is_alive() for t in threads), "a worker did not finish in 240 s"
        assert subscriber.wait_for_version(runs["drift"][1].worker.stats.versions[-1], 20)
        time.sleep(4)  # a few more scrapes of the final figures
        yield {"url": url, "models": names, "deep": tune.model, "runs": runs}
    finally:
        for job in jobs:
            remove_target(targets, job)
        for close in reversed(closers):
            with contextlib.suppress(Exception):  # keep closing the rest
                close()
        delete_topics(kafka.address, topics)
        client = redis.Redis.from_url(redis_service.address)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def _queries() -> list[tuple[str, str]]:
    dashboard = json.loads(dashboard_path().read_text())
    return [(f"{p['title']} {t['refId']}", t["expr"]) for p in dashboard["panels"]
            for t in p.get("targets", [])]


def test_every_dashboard_query_returns_data(live_runs):
    models = "|".join([*live_runs["models"].values(), live_runs["deep"]])
    empty = []
    for where, expr in _queries():
        expr = expr.replace("$__rate_interval", "1m").replace("$model", models)
        result = _get(live_runs["url"], "/api/v1/query", query=expr)["result"]
        values = [float(r["value"][1]) for r in result]
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{where}: {expr} -> {values or 'no series'}")
    assert not empty, "panels without data after a live run:\n" + "\n".join(empty)


def test_the_input_drift_alert_fires_for_the_drifting_model_only(live_runs):
    drift, calm = live_runs["models"]["drift"], live_runs["models"]["calm"]
    runs = live_runs["runs"]
    assert runs["drift"][1].worker.input_drift.drift.alarm_counts[("psi", "value")] == 1
    assert not runs["calm"][1].worker.input_drift.drift.alarm_counts
    deadline = time.monotonic() + 30
    firing: list[dict] = []
    while time.monotonic() < deadline:
        alerts = _get(live_runs["url"], "/api/v1/alerts")["alerts"]
        firing = [a for a in alerts if a["labels"]["alertname"] == "LifelongInputDrift"]
        if any(a["labels"]["model"] == drift and a["state"] == "firing" for a in firing):
            break
        time.sleep(0.5)
    mine = {(a["labels"]["model"], a["labels"]["signal"], a["state"]) for a in firing}
    assert (drift, "value", "firing") in mine, firing
    assert not [m for m in mine if m[0] == calm], f"the calm model alerted: {mine}"


def test_the_report_draws_the_live_run_from_the_range_api(live_runs, tmp_path):
    from monitoring.report import render
    from monitoring.report_sources import from_prometheus

    drift = live_runs["models"]["drift"]
    end = time.time()
    run = from_prometheus(live_runs["url"], drift, end - 120, end, step=1.0)
    assert {"rolling RMSE", "RMSE"} <= set(run.quality)
    assert {"value", "score"} <= set(run.drift_psi)
    assert any(what == "value (psi)" for _, what in run.drift_marks), run.drift_marks
    assert run.version_marks and run.throughput and run.lag
    assert {"event -> learned", "learned -> published", "published -> loaded",
            "event -> served"} <= set(run.freshness)
    page = render([run], tmp_path)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["run0-drift.png", "run0-freshness.png", "run0-lag.png", "run0-quality.png",
                    "run0-throughput.png"]
    assert all(f'src="{name}"' in page.read_text() for name in pngs)
