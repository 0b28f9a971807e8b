"""`evaluate --model lifelong` against River, on the real stream and the synthetic one.

For each stream (MovieTweetings 100k, time-ordered, when present; the synthetic drifting
stream always), everything prequential, in time order, from scratch:

- the best River configuration of a small grid (``reco.Baseline`` and ``reco.BiasedMF``
  learning rates and L2; bare River loops, as the README's reference figures are),
- ``evaluate --model BiasedMF`` and ``evaluate --model lifelong`` (the same worker path,
  :func:`lifelong.commands.evaluate_file`), interleaved ``--repeat`` times,

and prints RMSE and the ratios: lifelong RMSE / best River RMSE (target <= 0.97) and
lifelong / BiasedMF throughput in events per CPU-second (target >= 0.5), median and range.

    python -m bench.lifelong [--repeat 3] [--data PATH] [--synthetic-events 60000]
                             [--stream both|real|synthetic] [--json PATH]

The real stream is read from ``$LIFELONG_MOVIETWEETINGS`` or
``../shared/data/movietweetings-100k/ratings.dat`` (relative to the repository root); when
it is absent that is said and only the synthetic stream runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from river import optim, reco

from bench.common import commit, summary
from lifelong.commands import evaluate_file
from stream.synthetic import SyntheticStream, write

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("LIFELONG_MOVIETWEETINGS",
                           ROOT.parent / "shared/data/movietweetings-100k/ratings.dat"))


def _rows(path: Path) -> list[tuple[str, str, float]]:
    sep = "::" if path.suffix == ".dat" else "\t"
    rows = [line.rstrip("\n").split(sep) for line in path.open() if line.strip()]
    rows.sort(key=lambda r: float(r[3]))  # stable: time order
    return [(r[0], r[1], float(r[2])) for r in rows]


def _grid() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lr in (0.025, 0.05, 0.075):
        out[f"Baseline SGD {lr}"] = lambda lr=lr: reco.Baseline(optimizer=optim.SGD(lr))
        for latent in (0.005, 0.05):
            for l2 in (0.0, 0.03):
                out[f"BiasedMF bias SGD {lr}, latent SGD {latent}, l2 {l2}"] = (
                    lambda lr=lr, latent=latent, l2=l2: reco.BiasedMF(
                        n_factors=10, bias_optimizer=optim.SGD(lr),
                        latent_optimizer=optim.SGD(latent), l2_bias=l2, l2_latent=l2,
                        latent_initializer=optim.initializers.Normal(0.0, 0.1, seed=42),
                        seed=42))
    return out


def best_river(rows: list[tuple[str, str, float]], lo: float, hi: float) -> tuple[str, float]:
    """The River configuration of the grid with the lowest prequential RMSE."""
    results = {}
    for name, make in _grid().items():
        model, se = make(), 0.0
        for u, i, y in rows:
            p = min(max(model.predict_one(u, i), lo), hi)
            se += (y - p) ** 2
            model.learn_one(u, i, y)
        results[name] = math.sqrt(se / len(rows))
    name = min(results, key=results.__getitem__)
    return name, results[name]


@contextlib.contextmanager
def _round_clock() -> Iterator[list[float]]:
    """CPU-seconds spent in ``LifelongLearner.run_round`` meanwhile (train, score, gate)."""
    from learning.lifelong import LifelongLearner

    spent = [0.0]
    run_round = LifelongLearner.run_round

    def timed(self: LifelongLearner) -> Any:
        cpu = time.process_time()
        try:
            return run_round(self)
        finally:
            spent[0] += time.process_time() - cpu

    LifelongLearner.run_round = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        LifelongLearner.run_round = run_round  # type: ignore[method-assign]


def _run(path: Path, model: str, clip: tuple[float, float]) -> tuple[float, float, dict]:
    with _round_clock() as rounds:
        cpu = time.process_time()
        report = evaluate_file(path, fmt="movielens", model=model, sort_by_time=True, clip=clip)
        cpu = time.process_time() - cpu
    report["cpu_seconds"], report["round_cpu_seconds"] = cpu, rounds[0]
    return report["rmse"], report["events"] / cpu, report


def stream(name: str, path: Path, clip: tuple[float, float], repeat: int) -> dict[str, Any]:
    """Figures for one stream; prints them."""
    river_name, river_rmse = best_river(_rows(path), *clip)
    speeds: dict[str, list[float]] = {"BiasedMF": [], "lifelong": []}
    cpu: dict[str, list[float]] = {"BiasedMF": [], "lifelong": [], "rounds": []}
    rmse: dict[str, float] = {}
    report: dict = {}
    for _ in range(repeat):  # interleaved: the machine's load hits both alike
        for model in ("BiasedMF", "lifelong"):
            rmse[model], speed, rep = _run(path, model, clip)
            speeds[model].append(speed)
            cpu[model].append(rep["cpu_seconds"])
            if model == "lifelong":
                report = rep
                cpu["rounds"].append(rep["round_cpu_seconds"])
    ratios = [a / b for a, b in zip(speeds["lifelong"], speeds["BiasedMF"], strict=True)]
    print(f"{name}: {report['events']} events, clip {clip}, {repeat} interleaved repeats")
    print(f"  best River of the grid: {river_name}: RMSE {river_rmse:.4f}")
    print(f"  evaluate --model BiasedMF: RMSE {rmse['BiasedMF']:.4f}, "
          f"{statistics.median(speeds['BiasedMF']):,.0f} events/CPU-s")
    print(f"  evaluate --model lifelong: RMSE {rmse['lifelong']:.4f} (River part "
          f"{report['models']['online']['rmse']:.4f}, deep part "
          f"{report['models']['deep']['rmse']:.4f}), "
          f"{statistics.median(speeds['lifelong']):,.0f} events/CPU-s, "
          f"{report['rounds']} rounds ({report['promotions']} promoted)")
    print(f"  ratio RMSE lifelong / best River = {rmse['lifelong'] / river_rmse:.5f} "
          f"({rmse['lifelong']:.6f} vs {river_rmse:.6f}; target <= 0.97)")
    print(f"  ratio throughput lifelong / BiasedMF = {statistics.median(ratios):.2f} "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}; target >= 0.5)")
    print("  CPU-s per run (repeats in order): BiasedMF "
          + ", ".join(f"{x:.2f}" for x in cpu["BiasedMF"]) + "; lifelong "
          + ", ".join(f"{x:.2f}" for x in cpu["lifelong"]) + ", of which rounds "
          + ", ".join(f"{x:.2f}" for x in cpu["rounds"])
          + " (the first lifelong run also imports torch)")
    return {"river": river_rmse, "river_config": river_name, "lifelong": rmse["lifelong"],
            "biased_mf": rmse["BiasedMF"], "rmse_ratio": rmse["lifelong"] / river_rmse,
            "speed": ratios, "speed_summary": summary(ratios),
            "events_per_cpu_second": {k: summary(v) for k, v in speeds.items()},
            "cpu_seconds": cpu,
            "rounds": report["rounds"], "promotions": report["promotions"],
            "parts": {k: v["rmse"] for k, v in report["models"].items()}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=REAL)
    parser.add_argument("--synthetic-events", type=int, default=60_000)
    parser.add_argument("--stream", choices=("both", "real", "synthetic"), default="both",
                        help="run one stream only (e.g. the two in two processes)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the figures there (bench/results/lifelong-*.json)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    out: dict[str, Any] = {}
    try:
        _streams(args, out)
    finally:
        if args.json is not None:
            args.json.write_text(json.dumps({
                "command": "python -m bench.lifelong " + " ".join(
                    sys.argv[1:] if argv is None else argv),
                "commit": commit(), "loadavg_before": load, "loadavg_after": os.getloadavg(),
                "unit": "events per CPU-second (time.process_time), interleaved repeats",
                **out}, indent=2) + "\n")
    return out


def _streams(args: argparse.Namespace, out: dict[str, Any]) -> None:
    if args.stream == "synthetic":
        pass
    elif args.data.exists():
        out["real"] = stream("MovieTweetings", args.data, (0.0, 10.0), args.repeat)
    else:
        print(f"real stream absent ({args.data}): set LIFELONG_MOVIETWEETINGS; synthetic only")
    if args.stream == "real":
        return
    with tempfile.TemporaryDirectory() as tmp:
        n = args.synthetic_events
        path = Path(tmp) / "synthetic.tsv"
        write(SyntheticStream(n_users=500, n_items=800, n_events=n, drift_at=(n // 2,),
                              seed=0), path, "movielens")
        out["synthetic"] = stream("synthetic (500 users, 800 items, taste drift half way)",
                                  path, (1.0, 5.0), args.repeat)


if __name__ == "__main__":
    main()
