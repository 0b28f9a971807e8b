"""The demo path, shortened, run as a user runs it: the installed `lifelong` script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.e2e


def _lifelong() -> list[str]:
    exe = shutil.which("lifelong", path=str(Path(sys.executable).parent))
    assert exe, "the `lifelong` script is not installed next to this Python"
    return [exe]


def test_demo_streams_learns_publishes_and_is_scraped(kafka, redis_service, prometheus,
                                                     tmp_path, unique):
    env = {**os.environ, "LIFELONG_SIGNING_KEY": unique * 4, "LIFELONG_PREFIX": f"e2e-{unique}",
           "COLUMNS": "160"}
    env.pop("LIFELONG_SIGNING_KEY_FILE", None)
    proc = subprocess.run([*_lifelong(), "demo", "--events", "3000", "--drift-at", "1500",
                           "--invalid-rate", "0.02", "--report", str(tmp_path / "report")],
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "events learned" in proc.stdout
    assert "model versions published" in proc.stdout
    page = (tmp_path / "report" / "index.html").read_text()  # drawn from Prometheus
    assert 'src="run0-quality.png"' in page and 'src="run0-throughput.png"' in page
    assert (tmp_path / "report" / "run0-quality.png").stat().st_size > 10_000

    listed = subprocess.run([*_lifelong(), "models", "list", "demo", "--json"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows and rows[-1]["model"] == "demo"
    # a whole version first, then row deltas over it (docs/publishing.md)
    assert rows[0]["format"] == "river-pickle"
    assert {r["format"] for r in rows} <= {"river-pickle", "river-delta"}
    assert sum(rows[-1]["offsets"].values()) == 3000

    client = redis.Redis.from_url(redis_service.address)
    keys = list(client.scan_iter(f"e2e-{unique}:*"))
    assert keys
    client.delete(*keys)


def test_evaluate_replays_a_file_without_services(tmp_path):
    from stream.synthetic import SyntheticStream, write

    data = tmp_path / "ratings.tsv"
    write(SyntheticStream(n_events=2000, drift_at=(1000,), seed=9), data, "movielens")
    with data.open("a") as fh:
        fh.write("u1\ti1\tnot-a-rating\t5\n")
    report_path = tmp_path / "report.json"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "", "REDIS_URL": ""}
    proc = subprocess.run([*_lifelong(), "evaluate", "--data", str(data), "--format",
                           "movielens", "--model", "BiasedMF", "--clip", "1,5", "--output",
                           str(report_path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    assert report["events"] == 2001 and report["invalid"] == 1
    assert 0 < report["mae"] <= report["rmse"] < 2.0
    assert report["events_per_second"] > 0 and report["model"] == "BiasedMF"
