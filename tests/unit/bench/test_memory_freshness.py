"""The pieces of bench/memory.py and bench/freshness.py that need no services."""

from __future__ import annotations

import argparse

import pytest

from bench.freshness import _percentiles, freshness
from bench.memory import growth, rss_mb, run_bare, run_worker


def _args(**kw: object) -> argparse.Namespace:
    base = {"events": 10_000, "users": 400, "items": 100, "seed": 1, "publish": "none"}
    return argparse.Namespace(**(base | kw))


def test_worker_and_bare_runs_sample_rss_every_tenth() -> None:
    worker, bare = run_worker(_args()), run_bare(_args())
    for out in (worker, bare):
        assert [s["events"] for s in out["samples"]] == [1000 * k for k in range(1, 11)]
        assert all(s["rss_mb"] > 10 for s in out["samples"])
    assert worker["learned"] + worker["invalid"] + worker["quarantined"] == 10_000
    assert 0 < bare["users"] <= 400


def test_growth_is_from_the_fifth_sample_to_the_last() -> None:
    samples = [{"rss_mb": float(v)} for v in (1, 2, 3, 4, 100, 6, 7, 8, 9, 110)]
    assert abs(growth(samples) - 0.10) < 1e-12
    assert rss_mb() > 0


def test_freshness_takes_the_first_version_covering_each_event() -> None:
    sent = [10.0, 10.5, 11.0, 11.5]
    swaps = [(10.7, 1), (10.9, 0), (11.6, 2), (12.0, 4)]  # an older version seen late: ignored
    assert freshness(sent, swaps, warmup=0.0) == pytest.approx([0.7, 1.1, 1.0, 0.5])
    assert freshness(sent, swaps, warmup=1.0) == pytest.approx([1.0, 0.5])
    assert freshness(sent, [(11.0, 1)], warmup=0.0) == [1.0]  # never visible: left out
    assert _percentiles([3.0, 1.0, 2.0])["p50"] == 2.0


def test_publish_split_reports_the_learners_own_clock() -> None:
    from bench.freshness import publish_split
    from consumers.worker import WorkerStats

    stats = WorkerStats(elapsed=10.0)
    assert publish_split(stats, {}) == {}
    stats.publish_times = [(0.0, 0.05, 0.0), (0.5, 0.07, 0.0), (1.6, 0.06, 0.4)]
    stats.publish_steps["publisher"] = 0.1
    out = publish_split(stats, {"store": 0.08})
    assert out["n"] == 3 and out["share"] == pytest.approx(0.018)
    assert out["start_to_start"]["max"] == pytest.approx(1.1)
    assert out["held"]["total"] == pytest.approx(0.4) and out["took"]["max"] == 0.07
    assert out["steps_seconds"]["publisher"] == 0.1 and out["publisher_seconds"] == {
        "store": 0.08}
