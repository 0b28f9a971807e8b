"""Scratch harness (issue 8, fourth round): ranking variants on a prefix of MovieTweetings.

The protocol of ``evaluate_file`` / :class:`~learning.ranking_learner.RankingLearner`
(Vinagre et al., K = 10): events sorted stably by time, items indexed in order of first
appearance; an event is ranked when its user has an earlier event and its item was seen
before and is new to the user; every known item but the user's own is ranked (a model
with ``candidate_scores`` is measured from its candidates, the same figures as its dense
scores); then the model learns the event (weight 1: any rating is one interaction).
``--check`` compares the default ``rerank`` with ``evaluate_file`` on the same prefix.

    LIFELONG_MOVIETWEETINGS=/work/shared/data/movietweetings-100k/ratings.dat \\
        python -m bench.rank_proto --limit 50000 --variants rerank,mlp --repeat 3
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from learning.ranking_metrics import RankingPrequential

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "movietweetings-100k" / "ratings.dat"


def load(limit: int | None) -> list[tuple[str, str, float]]:
    """(user, item, ts) sorted stably by time, the first ``limit`` of them."""
    path = Path(os.environ.get("LIFELONG_MOVIETWEETINGS", DEFAULT_DATA))
    if not path.exists():
        raise SystemExit(f"MovieTweetings not found at {path} (set LIFELONG_MOVIETWEETINGS)")
    rows = [line.split("::") for line in path.read_text().splitlines() if line]
    rows.sort(key=lambda r: int(r[3]))
    return [(r[0], r[1], float(r[3])) for r in rows[:limit]]


def run(model: Any, events: list[tuple[str, str, float]], k: int = 10,
        on_ranked: Callable[..., None] | None = None) -> dict[str, float]:
    """Prequential HR@k / NDCG@k of ``model`` over ``events``; events per CPU second."""
    metrics = RankingPrequential(k, 1000)
    index: dict[str, int] = {}
    seen: dict[str, set[int]] = {}
    started = time.process_time()
    for user, item_id, ts in events:
        row = index.get(item_id)
        mine = seen.get(user)
        if mine is not None and row is not None and row not in mine:
            exclude = np.fromiter(mine, np.int64, len(mine))
            n = model.n_items
            if hasattr(model, "candidate_scores"):
                rows, values = model.candidate_scores(user, ts)
                rank, top = metrics.measure_candidates(
                    rows, values, row, exclude, lambda u=user, t=ts: model.score_items(u, t), n)
            else:
                rank, top = metrics.measure(model.score_items(user), row, exclude)
            metrics.record(rank, top, n)
            if on_ranked is not None:
                on_ranked(user, row, mine, ts, rank)
        if row is None:
            row = index[item_id] = len(index)
        model.learn_one(user, row, 1.0, ts)
        if mine is None:
            mine = seen[user] = set()
        mine.add(row)
    cpu = time.process_time() - started
    s = metrics.score()
    return {"hr": s.hr, "ndcg": s.ndcg, "n": s.n, "eps_cpu": len(events) / cpu}


def bpr_step_cost(events: list[tuple[str, str, float]], repeat: int) -> None:
    """BPR (32 factors, popularity negatives) learning ``events``: compiled vs numpy step.

    Interleaved in this process, ``repeat`` times each; events per CPU second, median [range].
    """
    from learning import rank_bpr_kernel
    from learning.rank_bpr import BPR

    index: dict[str, int] = {}
    rows = [(u, index.setdefault(i, len(index))) for u, i, _ in events]
    compiled = rank_bpr_kernel.step
    cost: dict[str, list[float]] = {"numpy": [], "compiled": []}
    for _ in range(repeat):
        for name in cost:
            rank_bpr_kernel.step = compiled if name == "compiled" else None
            bpr = BPR(32, sampling="popularity", seed=7)
            started = time.process_time()
            for user, item in rows:
                bpr.learn_one(user, item)
            cost[name].append(len(rows) / (time.process_time() - started))
    rank_bpr_kernel.step = compiled
    for name, eps in cost.items():
        print(f"BPR.learn_one {name}: {statistics.median(eps):,.0f} [{min(eps):,.0f}.."
              f"{max(eps):,.0f}] events/CPU-s, load {os.getloadavg()[0]:.1f}")


def _round6_bpr_rerank(**kwargs: Any) -> Any:
    """``rerank-bpr`` as round 6 ran it: BPR scores every item, numpy BPR step (cost only)."""
    from learning import rank_bpr_kernel
    from learning.rank_rerank_bpr import BPRRerank

    class Round6(BPRRerank):
        def _extra_candidates(self, user: str, mask: np.ndarray) -> None:
            super()._extra_candidates(user, mask)
            if self._bpr_scores is None:
                self._bpr_scores = self.bpr_scores(user)

        def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
            compiled, rank_bpr_kernel.step = rank_bpr_kernel.step, None
            try:
                super().learn_one(user, item, weight, ts)
            finally:
                rank_bpr_kernel.step = compiled

    return Round6(**kwargs)


def variants() -> dict[str, Callable[[], Any]]:
    from learning.rank_rerank import ListwiseRerank
    from learning.rank_rerank_bpr import BPRRerank
    from learning.rank_rerank_knn import KNNRerank
    from learning.rank_rerank_mlp import MLPRerank
    from learning.rankers import Popularity

    out: dict[str, Callable[[], Any]] = {
        "decayed-popularity": lambda: Popularity(decay=0.999),
        "rerank": ListwiseRerank,
        "rerank-knn": KNNRerank,
        "rerank-mlp": MLPRerank,
        "rerank-bpr": BPRRerank,
        # round 7 (rankq8): BPR ensembles and sizes, seeded by --seed
        "rerank-bpr2": lambda seed=0: BPRRerank(bpr_models=2, seed=seed),
        "rerank-bpr3": lambda seed=0: BPRRerank(bpr_models=3, seed=seed),
        "rerank-bpr-f64": lambda seed=0: BPRRerank(bpr_factors=64, seed=seed),
        "rerank-bpr2-f64": lambda seed=0: BPRRerank(bpr_models=2, bpr_factors=64, seed=seed),
        "rerank-bpr-last1": lambda seed=0: BPRRerank(bpr_last=1, seed=seed),
        "rerank-bpr-last3": lambda seed=0: BPRRerank(bpr_last=3, seed=seed),
        "rerank-bpr2-last3": lambda seed=0: BPRRerank(bpr_models=2, bpr_last=3, seed=seed),
        "rerank-bpr-round6": _round6_bpr_rerank,
        "rerank-bpr-pool10k": lambda seed=0: BPRRerank(bpr_pool=10_000, seed=seed),
        # round 8 (rankq9): BPR negatives from the user's candidate list (hard negatives)
        "rerank-bpr-hard2": lambda seed=0: BPRRerank(bpr_hard=2, seed=seed),
        "rerank-bpr-hard2n2": lambda seed=0: BPRRerank(bpr_hard=2, bpr_negatives=2, seed=seed),
        "rerank-bpr-uni": lambda seed=0: BPRRerank(bpr_second="uniform", seed=seed),
        "rerank-bpr-heads2": lambda seed=0: BPRRerank(mlp_heads=2, seed=seed),
        "rerank-bpr-top2": lambda seed=0: BPRRerank(bpr_hard=2, bpr_hard_from="bpr-top",
                                                    seed=seed),
        "rerank-mlp-h64": lambda: MLPRerank(hidden=64),
        "rerank-mlp-lr3e-3": lambda: MLPRerank(mlp_lr=3e-3),
        "rerank-mlp-h32-s1": lambda: MLPRerank(hidden=32, seed=1),
        "rerank-mlp-h32-s2": lambda: MLPRerank(hidden=32, seed=2),
        "rerank-mlp-h64-s1": lambda: MLPRerank(hidden=64, seed=1),
        "rerank-mlp-h64-s2": lambda: MLPRerank(hidden=64, seed=2),
    }
    try:
        from bench import rank_proto_variants
        out.update(rank_proto_variants.VARIANTS)
    except ImportError:
        pass
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=50_000)
    parser.add_argument("--variants", default="rerank")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--seed", type=int, default=None,
                        help="pass seed= to every variant (one that takes it)")
    parser.add_argument("--bpr-step", action="store_true",
                        help="only time BPR's compiled step against its numpy path")
    args = parser.parse_args(argv)
    events = load(args.limit)
    if args.bpr_step:
        bpr_step_cost(events, args.repeat)
        return
    table = variants()
    names = args.variants.split(",")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for i in range(args.repeat):
        for name in names:
            make = table[name]
            model = make() if args.seed is None else make(seed=args.seed)
            results[name].append(run(model, events))
            r = results[name][-1]
            print(f"  run {i + 1} {name:28s} seed {args.seed} HR@10 {r['hr']:.4f} "
                  f"NDCG@10 {r['ndcg']:.4f} n {r['n']}  {r['eps_cpu']:,.0f} events/CPU-s  load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    print(f"\n{len(events)} events, {args.repeat} interleaved runs: median [range]")
    base = results[names[0]][0]
    for name, rs in results.items():
        eps = [r["eps_cpu"] for r in rs]
        print(f"| {name} | {rs[0]['hr']:.4f} / {rs[0]['ndcg']:.4f} | "
              f"x{rs[0]['hr'] / base['hr']:.3f} / x{rs[0]['ndcg'] / base['ndcg']:.3f} | "
              f"{statistics.median(eps):,.0f} [{min(eps):,.0f}..{max(eps):,.0f}] |")
    if args.check:
        import tempfile

        from lifelong.commands import evaluate_file

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "prefix.dat"
            path.write_text("".join(f"{u}::{i}::5::{int(t)}\n" for u, i, t in events))
            report = evaluate_file(path, fmt="movielens", model="rerank", sort_by_time=True,
                                   task="ranking")
        print(f"evaluate_file rerank: HR@10 {report['hr@10']:.4f} NDCG@10 "
              f"{report['ndcg@10']:.4f} evaluated {report['evaluated']}")
        assert math.isfinite(report["hr@10"])


if __name__ == "__main__":
    main()
