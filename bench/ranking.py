"""Ranking quality and speed: the README's three baselines reproduced, beside the blend.

Everything runs through ``lifelong.commands.evaluate_file`` (the ``lifelong evaluate --task
ranking`` code path: file source, decode, worker, learner), time-ordered, prequential
(rank, score, then learn), from scratch, K = 10.

1. MovieTweetings 100k (``../shared/data/movietweetings-100k/ratings.dat`` from the repo
   root, or ``$LIFELONG_MOVIETWEETINGS``): all-time popularity, decayed popularity (x0.999
   per event) and online BPR (32 factors, 4 uniform negatives) against the README figures,
   then the ranking models of this project; ratio = best model / best baseline.
2. The same on the synthetic implicit stream (``ImplicitStream``, the one behind ``lifelong
   produce --synthetic --implicit``: sessions, a view/click/cart/purchase funnel, trends, a
   taste drift half way), written to JSON lines and read back with its event types.
3. Throughput of ``evaluate --task ranking`` (the blend and the reranker) against
   ``evaluate`` (rating, River BiasedMF) on the MovieTweetings file, interleaved,
   ``--repeat`` runs each: events per wall second and per CPU second
   (``time.process_time``), median and range.
4. ``--ranking-throughput``: the real command, ``python -m lifelong evaluate --task ranking
   --sort-by-time`` (default ranker, whole process: imports, parsing, the report), as a
   subprocess timed by its CPU seconds, interleaved with the bare loop a user would write
   (parse, sort, decayed popularity x0.999 ranked with ``np.argpartition`` over every item,
   the same protocol); events per CPU second, median [range], and the ratio. The command
   runs the numba kernels (``learning/rank_kernels.py``) from a warm cache: the first run
   on a machine also compiles them (about 20 CPU seconds, docs/ranking.md "Throughput,
   round 5"); ``LIFELONG_NUMBA=0`` in the environment times the numpy path instead.

    python -m bench.ranking                 # everything (about 16 CPU minutes)
    python -m bench.ranking --no-throughput --synthetic-events 20000
    python -m bench.ranking --throughput-only --repeat 3
    python -m bench.ranking --deep --repeat 3   # the deep ranker's rows (deep_ranking)
    python -m bench.ranking --ranking-throughput --repeat 3 --json bench/results/x.json
    python -m bench.ranking --ranking-throughput --repeat 3 --against /tmp/old  # A/B
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import commit, summary
from lifelong.commands import evaluate_file, synthetic_stream
from stream.synthetic import write

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "movietweetings-100k" / "ratings.dat"
README = {"popularity": (0.1341, 0.0694), "decayed-popularity": (0.2283, 0.1452),
          "bpr": (0.1289, 0.0672)}
BASELINES = ("popularity", "decayed-popularity", "bpr")
MODELS = ("co-occurrence", "bpr-pop", "blend", "rerank",  # rerank: the default
          "rerank-knn", "rerank-mlp", "rerank-bpr",
          "rerank-bpr-uni")  # rerank-bpr-uni: the best, round 8 (docs/ranking.md)
RATING = ("rating BiasedMF", ("rating", "BiasedMF"))


def _data_path() -> Path | None:
    path = Path(os.environ.get("LIFELONG_MOVIETWEETINGS", DEFAULT_DATA))
    return path if path.exists() else None


def _run(data: Path, fmt: str, model: str, task: str = "ranking",
         seed: int = 42) -> tuple[dict[str, Any], float]:
    cpu = time.process_time()
    report = evaluate_file(data, fmt=fmt, model=model, sort_by_time=True, task=task, seed=seed)
    return report, time.process_time() - cpu


def quality(data: Path, fmt: str, title: str, reference: bool,
            model_seeds: tuple[int, ...] = ()) -> float:
    """Print the table for one stream; return min(HR ratio, NDCG ratio) of the best model.

    ``model_seeds``: the best model is also run with these model seeds (the table's runs use
    42); its ratio per seed, the median and the range are printed, and the minimum returned.
    """
    print(f"\n{title}: HR@10 / NDCG@10, prequential, time-ordered, from scratch")
    rows: dict[str, tuple[float, float]] = {}
    for model in BASELINES + MODELS:
        report, cpu = _run(data, fmt, model)
        rows[model] = (report["hr@10"], report["ndcg@10"])
        ref = README.get(model) if reference else None
        ref_text = f"   README {ref[0]:.4f} / {ref[1]:.4f}" if ref else ""
        print(f"  {model:20s} {rows[model][0]:.4f} / {rows[model][1]:.4f}"
              f"   cov {report['coverage@10']:.3f}  nov {report['novelty']:.2f}"
              f"   evaluated {report['evaluated']}  ({cpu:.0f} CPU s){ref_text}")
        for part, fig in report["models"].items():
            print(f"      part {part:14s} {fig['hr@10']:.4f} / {fig['ndcg@10']:.4f}")
    best_base = max(BASELINES, key=lambda m: rows[m][0])
    best = max(MODELS, key=lambda m: rows[m][0])
    for model in (m for m in dict.fromkeys((best, "rerank", "blend")) if m in rows):
        hr = rows[model][0] / rows[best_base][0]
        ndcg = rows[model][1] / rows[best_base][1]
        print(f"  ratio {model} / {best_base}: HR@10 x{hr:.3f}  NDCG@10 x{ndcg:.3f}  "
              f"(target x1.15 on both){'  <- best' if model == best else ''}")
    ratios = {42: (rows[best][0] / rows[best_base][0], rows[best][1] / rows[best_base][1])}
    for seed in model_seeds:
        if seed not in ratios:
            report = _run(data, fmt, best, seed=seed)[0]
            ratios[seed] = (report["hr@10"] / rows[best_base][0],
                            report["ndcg@10"] / rows[best_base][1])
            print(f"  ratio {best} seed {seed}: HR@10 x{ratios[seed][0]:.4f}  NDCG@10 "
                  f"x{ratios[seed][1]:.4f}  ({report['hr@10']:.5f} / {report['ndcg@10']:.5f})")
    if len(ratios) > 1:
        for i, name in enumerate(("HR@10", "NDCG@10")):
            got = [r[i] for r in ratios.values()]
            print(f"  ratio {best} over seeds {sorted(ratios)}: {name} median "
                  f"x{statistics.median(got):.4f} [x{min(got):.4f}..x{max(got):.4f}]")
    return min(min(r) for r in ratios.values())


def throughput(data: Path, repeat: int, models: tuple[str, ...] = ("rerank", "blend")) -> None:
    """Interleaved runs of evaluate --task ranking (each of ``models``) and evaluate BiasedMF."""
    plan = (*((f"ranking {m}", ("ranking", m)) for m in models), RATING)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in plan}
    figures: dict[str, tuple[float, float, float]] = {}
    for _ in range(repeat):
        for name, (task, model) in plan:
            report, cpu = _run(data, "movielens", model, task)
            runs[name].append((report["events_per_second"], report["events"] / cpu))
            print(f"  run {len(runs[name])} {name:16s} {runs[name][-1][0]:>7.0f} events/s "
                  f"{runs[name][-1][1]:>7.0f} events/CPU-s", flush=True)
            if task == "ranking":
                figures[name] = (report["hr@10"], report["ndcg@10"], report["coverage@10"])
    print(f"\nthroughput on {data.name}, {repeat} interleaved runs each: median [range]")
    for name, values in runs.items():
        wall = [w for w, _ in values]
        per_cpu = [c for _, c in values]
        print(f"  {name:16s} {statistics.median(wall):>7.0f} events/s [{min(wall):.0f}.."
              f"{max(wall):.0f}]   {statistics.median(per_cpu):>7.0f} events/CPU-s "
              f"[{min(per_cpu):.0f}..{max(per_cpu):.0f}]")
    for name, (hr, ndcg, cov) in figures.items():
        print(f"  ({name}, every run: HR@10 {hr:.4f}, NDCG@10 {ndcg:.4f}, coverage@10 {cov:.4f})")
    rating = statistics.median(c for _, c in runs["rating BiasedMF"])
    for name in figures:
        ratio = statistics.median(c for _, c in runs[name]) / rating
        print(f"  ratio {name} / rating (events per CPU second) = {ratio:.2f}; "
              f"target >= 5,000 events/s for ranking")


def bare_decayed_popularity(path: Path, k: int = 10) -> tuple[int, int, float, float]:
    """What a user would write: decayed popularity (x0.999), top-k by ``np.argpartition``.

    Parses ``user::item::rating::ts``, sorts stably by time, then per event: if the user
    has an earlier event and the item was seen and is new to them, rank every known item
    but the user's own (rank = 1 + items scoring higher), take the top k, then learn.
    Returns (events, ranked, HR@k, NDCG@k).
    """
    rows = [line.split("::") for line in path.read_text().splitlines() if line]
    rows.sort(key=lambda r: int(r[3]))
    index: dict[str, int] = {}
    for r in rows:
        index.setdefault(r[1], len(index))
    counts = np.zeros(len(index))
    seen: dict[str, set[int]] = {}
    known, scale, ranked, hits, gain = 0, 1.0, 0, 0, 0.0
    for user, item, _, _ in rows:
        row = index[item]
        mine = seen.get(user)
        if mine is not None and row < known and row not in mine:
            scores = counts[:known].copy()
            scores[np.fromiter(mine, np.int64, len(mine))] = -np.inf
            top = np.argpartition(-scores, min(k, known - 1))[:k]
            top = top[np.argsort(-scores[top])]  # the list a user is shown
            rank = 1 + int(np.count_nonzero(scores > scores[row]))
            ranked += 1
            if rank <= k:
                hits += 1
                gain += 1.0 / math.log2(rank + 1)
        known = max(known, row + 1)
        scale /= 0.999
        counts[row] += scale
        if scale > 1e100:
            counts /= scale
            scale = 1.0
        seen.setdefault(user, set()).add(row)
    return len(rows), ranked, hits / ranked, gain / ranked


def _command_cpu(data: Path, out: Path, root: Path = ROOT) -> tuple[float, dict[str, Any]]:
    """CPU seconds (user + sys) of one ``lifelong evaluate --task ranking`` process.

    ``root``: the checkout whose code runs (``--against``: an older one).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    path = os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH"))))
    done = subprocess.run([sys.executable, "-m", "lifelong", "evaluate", "--task", "ranking",
                           "--data", str(data), "--sort-by-time", "--output", str(out)],
                          cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path})
    if done.returncode:
        raise SystemExit(f"evaluate --task ranking failed ({done.returncode}):\n{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, json.loads(out.read_text())


def _warm_kernels(root: Path = ROOT) -> None:
    """Compile the numba kernels into their disk cache (untimed), so every timed run is warm."""
    code = ("from learning.ranking_learner import RankingLearner\n"
            "from stream.schema import Event\n"
            "learner = RankingLearner('rerank')\n"
            "for i in range(400):\n"
            "    learner.learn_one(Event(f'e{i}', f'u{i % 23}', f'i{(i * 7) % 31}', 'click',"
            " 1.0, float(i)))\n")
    path = os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH"))))
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True,
                   env={**os.environ, "PYTHONPATH": path})


#: report fields that may differ between two runs of the same code (timing, paths)
_VOLATILE = {"elapsed_seconds", "events_per_second", "created", "output", "data"}


def _report_diff(a: dict[str, Any], b: dict[str, Any], at: str = "") -> list[str]:
    """The fields (dotted paths) where two report.json differ, timing fields aside.

    >>> _report_diff({"hr@10": 0.2, "elapsed_seconds": 3, "models": {"x": {"n": 1}}},
    ...              {"hr@10": 0.2, "elapsed_seconds": 4, "models": {"x": {"n": 2}}})
    ['models.x.n']
    """
    out = []
    for key in sorted(set(a) | set(b)):
        if key in _VOLATILE:
            continue
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _report_diff(x, y, f"{at}{key}.")
        elif x != y:
            out.append(f"{at}{key}")
    return out


def ranking_throughput(data: Path, repeat: int, save: Path | None = None,
                       against: Path | None = None) -> dict[str, Any]:
    """The real ``evaluate --task ranking`` command against the bare loop, interleaved.

    ``against``: another checkout (e.g. ``git worktree add /tmp/old <commit>``) whose
    command runs interleaved too; its events per CPU second and whether every report field
    equals this one's are printed and saved.
    """
    _warm_kernels()
    if against is not None:
        _warm_kernels(against)
    command, bare, loads, old, diffs = [], [], [], [], []
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            if against is not None:
                cpu, old_report = _command_cpu(data, Path(tmp) / "old.json", against)
                old.append(old_report["events"] / cpu)
            cpu, report = _command_cpu(data, Path(tmp) / "report.json")
            command.append(report["events"] / cpu)
            if against is not None:
                diffs.append(_report_diff(old_report, report))
                print(f"  run {i + 1}: --against {against}: {old[-1]:,.0f} events/CPU-s; "
                      f"report fields that differ: {diffs[-1] or 'none'}", flush=True)
            started = time.process_time()
            events, ranked, hr, ndcg = bare_decayed_popularity(data)
            bare.append(events / (time.process_time() - started))
            loads.append(os.getloadavg()[0])
            print(f"  run {i + 1}: evaluate --task ranking ({report['model']}) "
                  f"{command[-1]:,.0f} events/CPU-s, bare decayed popularity {bare[-1]:,.0f} "
                  f"events/CPU-s, load {loads[-1]:.1f}", flush=True)
    ratios = [c / b for c, b in zip(command, bare, strict=True)]
    result = {
        "data": str(data), "events": report["events"], "model": report["model"],
        "command": "lifelong evaluate --task ranking --sort-by-time (subprocess, user+sys CPU)",
        "eps_cpu": summary(command), "bare_eps_cpu": summary(bare), "ratio": summary(ratios),
        "hr@10": report["hr@10"], "ndcg@10": report["ndcg@10"],
        "bare_hr@10": hr, "bare_ndcg@10": ndcg, "bare_evaluated": ranked,
        "evaluated": report["evaluated"], "load": summary(loads), "repeat": repeat,
        "commit": commit(),
        # the reranker's numba kernels, warm cache (LIFELONG_NUMBA=0: the numpy path)
        "numba": os.environ.get("LIFELONG_NUMBA", "1") != "0",
    }
    if against is not None:
        result["against"] = {"root": str(against), "eps_cpu": summary(old),
                             "speedup": summary([c / o for c, o in zip(command, old,
                                                                       strict=True)]),
                             "report_fields_differing": sorted({d for r in diffs for d in r})}
    print(f"\nthroughput, {repeat} interleaved runs, events per CPU second: median [range]"
          f"\n  evaluate --task ranking ({report['model']}, whole process) "
          f"{result['eps_cpu']['median']:,.0f} [{min(command):,.0f}..{max(command):,.0f}]"
          f"   HR@10 {report['hr@10']:.4f} NDCG@10 {report['ndcg@10']:.4f}"
          f"\n  bare decayed popularity + argpartition     "
          f"{result['bare_eps_cpu']['median']:,.0f} [{min(bare):,.0f}..{max(bare):,.0f}]"
          f"   HR@10 {hr:.4f} NDCG@10 {ndcg:.4f}"
          f"\n  ratio {result['ratio']['median']:.2f} [{min(ratios):.2f}..{max(ratios):.2f}]"
          f"; target >= 5,000 events/s; load {min(loads):.1f}..{max(loads):.1f}")
    if against is not None:
        sp = result["against"]["speedup"]
        print(f"  --against {against}: {result['against']['eps_cpu']['median']:,.0f} "
              f"[{min(old):,.0f}..{max(old):,.0f}]; speedup {sp['median']:.2f} "
              f"[{sp['min']:.2f}..{sp['max']:.2f}]; report fields that differ: "
              f"{result['against']['report_fields_differing'] or 'none'}")
    if save is not None:
        save.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42, help="synthetic implicit stream seed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model-seeds", default="",
                        help="comma-separated extra model seeds for the best model's ratio "
                             "(the table runs seed 42), e.g. 0,1")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--ranking-models", default="rerank,blend",
                        help="comma-separated ranking models timed against the rating path")
    parser.add_argument("--no-real", action="store_true", help="skip MovieTweetings")
    parser.add_argument("--throughput-only", action="store_true",
                        help="only the interleaved throughput runs")
    parser.add_argument("--deep", action="store_true",
                        help="only the deep ranking rows (deep_ranking, at the end)")
    parser.add_argument("--ranking-throughput", action="store_true",
                        help="only the real evaluate --task ranking command vs the bare loop")
    parser.add_argument("--json", type=Path, help="--ranking-throughput: save the figures here")
    parser.add_argument("--against", type=Path,
                        help="--ranking-throughput: also time this checkout's command "
                             "(an older commit), interleaved, and compare the reports")
    args = parser.parse_args(argv)
    data = None if args.no_real else _data_path()
    seeds = tuple(int(x) for x in args.model_seeds.split(",") if x)
    if args.ranking_throughput:
        if data is None:
            print(f"MovieTweetings not found at {DEFAULT_DATA} (set LIFELONG_MOVIETWEETINGS)")
            return
        ranking_throughput(data, args.repeat, args.json, args.against)
        return
    if args.deep:
        deep_ranking(data, args.synthetic_events, args.repeat)
        return
    if data is None and not args.no_real:
        print(f"MovieTweetings not found at {DEFAULT_DATA} (set LIFELONG_MOVIETWEETINGS): "
              "real-stream rows skipped")
    if data is not None and args.throughput_only:
        throughput(data, args.repeat, tuple(args.ranking_models.split(",")))
        return
    if data is not None:
        quality(data, "movielens", f"MovieTweetings 100k ({data})", reference=True,
                model_seeds=seeds)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "implicit.jsonl"
        write(synthetic_stream(args.synthetic_events, None, 0.0, args.seed, implicit=True),
              path, "jsonl")
        quality(path, "jsonl", f"synthetic implicit stream (ImplicitStream, "
                f"{args.synthetic_events} events, seed {args.seed}, drift half way)",
                reference=False, model_seeds=seeds)
    if data is not None and not args.no_throughput:
        throughput(data, args.repeat, tuple(args.ranking_models.split(",")))



# --- deep ranking (issue 8, the fine-tuner's model), added by the rankdeep branch -------------
DEEP_MODELS = ("deep", "deep-blend")


def deep_ranking(data: Path | None, synthetic_events: int, repeat: int) -> None:
    """The deep ranker (rounds every N events + fold-in) alone and mixed into the blend.

    Prequential through ``evaluate --task ranking --model deep|deep-blend`` against the best
    baseline and the blend on the same stream; quality is deterministic (seeded), so the
    ``repeat`` runs only time it: events per CPU second, median [range].
    """
    import torch

    torch.set_num_threads(1)  # tiny models: one intra-op thread beats two on a busy machine
    streams: list[tuple[str, Path, str]] = []
    tmp = tempfile.TemporaryDirectory()
    if data is not None:
        streams.append(("MovieTweetings 100k", data, "movielens"))
    from stream.synthetic_implicit import ImplicitStream

    path = Path(tmp.name) / "implicit.jsonl"
    write(ImplicitStream(n_events=synthetic_events, seed=7), path, "jsonl")
    streams.append((f"synthetic implicit stream, {synthetic_events} events", path, "jsonl"))
    for title, stream, fmt in streams:
        print(f"\n{title}: deep ranking, HR@10 / NDCG@10, prequential, from scratch")
        rows: dict[str, tuple[float, float]] = {}
        for model in (*BASELINES, "blend", *DEEP_MODELS):
            speeds = []
            for _ in range(repeat if model in DEEP_MODELS else 1):
                report, cpu = _run(stream, fmt, model)
                speeds.append(report["events"] / cpu)
            rows[model] = (report["hr@10"], report["ndcg@10"])
            print(f"  {model:20s} {rows[model][0]:.4f} / {rows[model][1]:.4f}   "
                  f"{statistics.median(speeds):,.0f} events/CPU-s "
                  f"[{min(speeds):,.0f}..{max(speeds):,.0f}] ({len(speeds)} runs)", flush=True)
        best_base = max(BASELINES, key=lambda m: rows[m][0])
        for model in (*DEEP_MODELS, "blend"):
            print(f"  ratio {model} / {best_base}: HR@10 x{rows[model][0] / rows[best_base][0]:.3f}"
                  f"  NDCG@10 x{rows[model][1] / rows[best_base][1]:.3f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
