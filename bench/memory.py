"""Memory of a long run with many ids: RSS sampled every 10% of the events.

Each run is a fresh process. ``worker``: the learner worker in-process, wired as ``lifelong
learn`` wires it (``OnlineLearner("BiasedMF")``, dedup window, data-quality gates, ADWIN
``ErrorDrift``, ``InputDriftWatch``, ``LearnerFreshness``, Prometheus ``LearnerMetrics``)
over a :class:`~stream.synthetic.SyntheticSource` (``--events`` synthetic events from
``--users`` users and ``--items`` items, JSON decoded and validated as from Kafka). The
source is in memory, not Kafka: this row measures the learner's process, not the broker's
client. With ``--publish redis`` (needs ``REDIS_URL`` and a signing key) it also publishes
deltas every 1,000 events to the real Redis with retention (``RetainLast``, keep_last 5),
as ``learn`` does; ``none`` publishes nothing. ``bare``: ``json.loads`` + River
``BiasedMF`` predict/learn over the same stream, the baseline, interleaved run by run.

The row: RSS growth from 50% to 100% of the run (target <= 5%), median and range over
``--repeat`` runs, beside the bare loop's. Results in ``bench/results/memory-LABEL.json``::

    python -m bench.memory --events 2000000 --users 200000 --repeat 3 --label run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import drop_prefix, summary

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def rss_mb() -> float:
    """This process's resident set size in MB (``VmRSS`` of /proc/self/status)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _stream(args: argparse.Namespace) -> Any:
    from stream.synthetic import SyntheticStream

    return SyntheticStream(n_users=args.users, n_items=args.items, n_events=args.events,
                           drift_at=(args.events // 2,), seed=args.seed)


def run_bare(args: argparse.Namespace) -> dict[str, Any]:
    """``json.loads`` + River predict/learn, RSS every 10%."""
    from bench.learn import _river

    model, every, samples = _river(), max(1, args.events // 10), []
    cpu = time.process_time()
    for n, raw in enumerate(_stream(args).raw(), start=1):
        e = json.loads(raw)
        model.predict_one(e["user_id"], e["item_id"])
        model.learn_one(e["user_id"], e["item_id"], e["value"])
        if n % every == 0:
            samples.append({"events": n, "rss_mb": rss_mb(), "cpu_s": time.process_time() - cpu})
    return {"samples": samples, "users": len(model.u_biases), "items": len(model.i_biases)}


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """The learner worker as ``learn`` wires it, over an in-memory synthetic source."""
    from prometheus_client import CollectorRegistry

    from consumers.worker import LearnerWorker, WorkerStats
    from learning.online import OnlineLearner
    from monitoring.drift import ErrorDrift
    from monitoring.drift_metrics import DriftMetrics
    from monitoring.freshness import FreshnessMetrics, LearnerFreshness
    from monitoring.input_drift import InputDriftWatch
    from monitoring.metrics import LearnerMetrics
    from stream.source import ListDeadLetters
    from stream.synthetic import SyntheticSource

    registry, name = CollectorRegistry(), f"bench-memory-{uuid.uuid4().hex[:8]}"
    learner = OnlineLearner("BiasedMF")
    publisher, store = None, None
    if args.publish == "redis":
        from consumers.publisher import RegistryPublisher
        from consumers.retention import RetainLast
        from lifelong.config import Settings
        from lifelong.wiring import open_registry

        store = open_registry(Settings.from_env(prefix=name))
        publisher = RetainLast(RegistryPublisher(store, name), store, name, keep_last=5)
    worker = LearnerWorker(
        SyntheticSource(_stream(args)), learner, ListDeadLetters(), publisher=publisher,
        publish_max_share=0.1, metrics=LearnerMetrics(registry, model=name, topic="bench"),
        drift=ErrorDrift(),
        input_drift=InputDriftWatch.for_learner(learner, name,
                                                metrics=DriftMetrics(registry, model=name)),
        freshness=LearnerFreshness.for_learner(learner, FreshnessMetrics(registry, model=name)))
    every, samples, cpu = max(1, args.events // 10), [], time.process_time()
    nxt = [every]

    def sample(stats: WorkerStats) -> None:
        if stats.consumed >= nxt[0]:
            samples.append({"events": stats.consumed, "rss_mb": rss_mb(),
                            "cpu_s": time.process_time() - cpu})
            nxt[0] += every

    try:
        stats = worker.run(on_batch=sample)
    finally:
        if store is not None:
            drop_prefix(name)
    return {"samples": samples, "learned": stats.learned, "invalid": stats.invalid,
            "quarantined": stats.quarantined, "published": args.publish}



def growth(samples: list[dict[str, Any]]) -> float:
    """RSS growth from the 50% sample to the last one, as a fraction."""
    half = samples[len(samples) // 2 - 1]["rss_mb"]  # the 5th of 10 samples: 50%
    return float(samples[-1]["rss_mb"] / half - 1.0)


def _child(kind: str, argv: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bench.memory", "--child", kind, *argv],
                          env=env, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))



def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--publish", choices=("none", "redis"), default="none")
    parser.add_argument("--label", default="run")
    parser.add_argument("--child", choices=("worker", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        out = (run_worker if args.child == "worker" else run_bare)(args)
        print(json.dumps(out))
        return out
    passed = [f"--events={args.events}", f"--users={args.users}", f"--items={args.items}",
              f"--seed={args.seed}", f"--publish={args.publish}"]
    result: dict[str, Any] = {
        "label": args.label, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "events": args.events, "users": args.users, "items": args.items,
        "repeat": args.repeat, "publish": args.publish, "python": platform.python_version(),
        "load_average": os.getloadavg(), "runs": []}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"memory-{args.label}.json"
    for i in range(args.repeat):
        order = ["worker", "bare"] if i % 2 == 0 else ["bare", "worker"]
        result["runs"].append({kind: _child(kind, passed) for kind in order})
        path.write_text(json.dumps(result, indent=1) + "\n")  # each run kept as it ends
    result["load_average_end"] = os.getloadavg()
    for kind in ("worker", "bare"):
        runs = [r[kind] for r in result["runs"]]
        result[kind] = {"growth_50_100": summary([growth(r["samples"]) for r in runs]),
                        "rss_mb_at_100": summary([r["samples"][-1]["rss_mb"] for r in runs]),
                        "rss_mb_at_10": summary([r["samples"][0]["rss_mb"] for r in runs])}
    w, b = result["worker"], result["bare"]
    print(f"RSS over {args.events} events, {args.users} users, {args.items} items, "
          f"{args.repeat} runs (median [range]); publish: {args.publish}")
    for kind, r in (("worker", w), ("bare River", b)):
        g = r["growth_50_100"]
        print(f"  {kind:<11} growth 50%->100% {100 * g['median']:+.1f}% "
              f"[{100 * g['min']:+.1f}..{100 * g['max']:+.1f}]  RSS at 10% "
              f"{r['rss_mb_at_10']['median']:.0f} MB, "
              f"at 100% {r['rss_mb_at_100']['median']:.0f} MB")
    print(f"  worker RSS at 100% / bare: "
          f"{w['rss_mb_at_100']['median'] / b['rss_mb_at_100']['median']:.2f}x")
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
