"""One ``evaluate_file`` run per model on MovieTweetings and on the synthetic implicit stream.

The ``lifelong evaluate --task ranking`` path (K = 10, sorted by time, from scratch, seed 42),
for a model chosen on events 0-50k with ``bench.rank_proto``; run once per model, never
tuned on these figures. Prints each report's quality fields and its events per CPU second.

    LIFELONG_MOVIETWEETINGS=/work/shared/data/movietweetings-100k/ratings.dat \\
        python -m bench.rank_proto_eval --models rerank-mlp
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.rank_proto import DEFAULT_DATA
from bench.ranking import synthetic_stream, write

FIELDS = ("evaluated", "cold_users", "hr@10", "ndcg@10", "coverage@10")


def _one(path: Path, fmt: str, model: str, label: str, seed: int = 42) -> None:
    from lifelong.commands import evaluate_file

    started = time.process_time()
    report = evaluate_file(path, fmt=fmt, model=model, sort_by_time=fmt == "movielens",
                           task="ranking", seed=seed)
    cpu = time.process_time() - started
    out = {k: report.get(k) for k in FIELDS} | {"events": report.get("events"),
                                                "cpu_s": round(cpu, 1)}
    print(f"{label} {model} seed {seed}: {json.dumps(out)} load {os.getloadavg()[0]:.1f}",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="rerank-mlp")
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--seed", type=int, default=42, help="the models' seed (evaluate's)")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    data = Path(os.environ.get("LIFELONG_MOVIETWEETINGS", DEFAULT_DATA))
    if not args.no_real:
        if not data.exists():
            print(f"MovieTweetings not found at {data} (set LIFELONG_MOVIETWEETINGS): skipped")
        else:
            for model in models:
                _one(data, "movielens", model, "MovieTweetings", args.seed)
    if not args.no_synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "implicit.jsonl"
            write(synthetic_stream(20_000, None, 0.0, 42, implicit=True), path, "jsonl")
            for model in models:
                _one(path, "jsonl", model, "synthetic (20k, seed 42)", args.seed)


if __name__ == "__main__":
    main()
