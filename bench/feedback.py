"""A simulated feedback loop: what learning from negatives (shown, not clicked) gains online.

The world is the synthetic implicit stream's known tastes
(:class:`~stream.synthetic_implicit.ImplicitStream`, no drift): each user's own top items
(``_top``: the 30 items their fresh draws come from) and each item's three successors (what
sessions follow it with). Both arms first learn the same ``--warmup`` events of that stream
(a copy of one warmed learner per arm). Then, for ``--steps`` steps, a user drawn by the
stream's own user activity is served the model's top ``k`` unseen items
(``RankingLearner.score_items``, the scores a subscriber serves), and clicks each shown item
independently with a hidden probability ``base + taste * [item in the user's top items] +
follow * [item follows the user's last click]``. A click is learned as a positive
(``type`` click); in the arm **with negatives** every shown item not clicked goes to
``RankingLearner.learn_negative`` (what the impression join hands the learner when the
window closes; here at once). The arms share their random numbers (the users drawn and one
uniform per slot and step), so they differ only by what the model learns.

Arms per model: ``without`` (clicks only), ``with`` (clicks and negatives through the
production path), and for ``rerank`` also ``discount`` (the behaviour before the ranker
learned negatives: the learner's served-score discount only). Online figures over the
loop: CTR (clicks / shown) and HR@k (share of steps with at least one click), per seed;
the report gives the median [range] over seeds of each arm and of the ratio with/without.
Nothing here is tuned on the loop: the models run with their defaults.

    python -m bench.feedback --seeds 3 --steps 4000 --json bench/results/feedback.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import commit, summary
from learning.ranking_learner import RankingLearner
from stream.schema import Event
from stream.synthetic_implicit import ImplicitStream

log = logging.getLogger(__name__)

ARMS = {"rerank": ("without", "discount", "with"), "bpr": ("without", "with"),
        "blend": ("without", "with"), "deep": ("without", "with")}


class World:
    """The hidden preferences of the simulated users (the stream's known tastes)."""

    def __init__(self, stream: ImplicitStream, *, base: float = 0.02, taste: float = 0.3,
                 follow: float = 0.3):
        self.stream = stream
        self.base, self.taste, self.follow = base, taste, follow
        self.top = [set(row.tolist()) for row in stream._top[0]]
        self.p_user = stream._p_user

    def click_probability(self, user: int, item: int, last: int | None) -> float:
        """The chance that ``user`` clicks ``item`` when shown, after last clicking ``last``."""
        p = self.base + self.taste * (item in self.top[user])
        if last is not None and item in self.stream._next[last]:
            p += self.follow
        return min(p, 0.95)


def _disable_ranker_negatives(learner: RankingLearner) -> None:
    """The ``discount`` arm: the ranker ignores negatives, the learner discounts them."""
    learner.ranker.remembers_negatives = False  # type: ignore[attr-defined]
    learner.ranker.learn_negative = lambda *args: None  # type: ignore[attr-defined]


def run_arm(warm: bytes, world: World, arm: str, steps: int, k: int, seed: int,
            t0: float, last: dict[int, int]) -> dict[str, Any]:
    """One arm of the loop from the warmed learner ``warm``; online CTR, HR@k and cost."""
    learner: RankingLearner = pickle.loads(warm)
    if arm == "discount":
        _disable_ranker_negatives(learner)
    rng = np.random.default_rng([seed, 99])  # common random numbers: same in every arm
    users = rng.choice(len(world.p_user), steps, p=world.p_user)
    draws = rng.random((steps, k))
    last = dict(last)
    ids = learner.item_ids()  # served rows are known items: the list does not grow
    clicks = hits = shown = 0
    distinct: set[int] = set()
    cpu = time.process_time()
    for t in range(steps):
        u = int(users[t])
        user, ts = f"u{u}", t0 + 10.0 * t
        scores = learner.score_items(user).copy()
        scores[learner.seen_items(user)] = -np.inf
        n = min(k, int(np.isfinite(scores).sum()))
        if n == 0:
            continue
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.lexsort((top, -scores[top]))]  # best first, ties by row
        items = [int(ids[r][1:]) for r in top.tolist()]  # "i123" -> 123
        clicked = [draws[t, j] < world.click_probability(u, it, last.get(u))
                   for j, it in enumerate(items)]
        shown += n
        distinct.update(items)
        if any(clicked):
            hits += 1
        for j, it in enumerate(items):
            if clicked[j]:
                clicks += 1
                learner.learn_one(Event(f"fb-{seed}-{t}-{j}", user, f"i{it}", "click", 1.0, ts))
                last[u] = it
        if arm != "without":
            for j, it in enumerate(items):
                if not clicked[j]:
                    learner.learn_negative(user, f"i{it}", ts + 1.0)
    cpu = time.process_time() - cpu
    return {"ctr": clicks / max(shown, 1), "hr": hits / steps, "clicks": clicks,
            "shown": shown, "distinct_items": len(distinct), "cpu_s": cpu,
            "steps_per_cpu_s": steps / max(cpu, 1e-9),
            "negatives": getattr(learner, "negatives_learned", 0)}


def warm_up(model: str, stream: ImplicitStream, warmup: int, seed: int
            ) -> tuple[bytes, float, dict[int, int]]:
    """The learner after the stream's first ``warmup`` events, the last time, last clicks."""
    learner = RankingLearner(model, seed=seed, part_metrics=False)
    last: dict[int, int] = {}
    ts = 0.0
    for n, event in enumerate(stream):
        if n >= warmup:
            break
        learner.learn_one(event)
        last[int(event.user_id[1:])] = int(event.item_id[1:])
        ts = event.ts
    if model == "deep":  # in the loop a round every 300 positives, so it trains some (both arms)
        learner.ranker.train_round()  # type: ignore[attr-defined]
        learner.ranker.round_every, learner.ranker.round_growth = 300, 0.0  # type: ignore
    return pickle.dumps(learner), ts + 10.0, last


def bench(models: list[str], seeds: int, steps: int, warmup: int, k: int) -> dict[str, Any]:
    """Every model's arms on ``seeds`` worlds; per arm and ratio: median [range]."""
    out: dict[str, Any] = {"commit": commit(), "steps": steps, "warmup": warmup, "k": k,
                           "seeds": list(range(seeds)), "load_before": os.getloadavg(),
                           "world": {"base": 0.02, "taste": 0.3, "follow": 0.3,
                                     "stream": "ImplicitStream(n_events=warmup, drift_at=())"},
                           "models": {}}
    for model in models:
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS[model]}
        for seed in range(seeds):
            stream = ImplicitStream(n_events=warmup, drift_at=(), seed=seed)
            world = World(stream)
            warm, t0, last = warm_up(model, stream, warmup, seed)
            for arm in ARMS[model]:  # interleaved: every arm of a seed before the next seed
                r = run_arm(warm, world, arm, steps, k, seed, t0, last)
                runs[arm].append(r)
                log.info("%s seed %d %s: CTR %.4f HR@%d %.4f (%d distinct items, %.1f CPU s)",
                         model, seed, arm, r["ctr"], k, r["hr"], r["distinct_items"],
                         r["cpu_s"])
        res: dict[str, Any] = {}
        for arm, rs in runs.items():
            res[arm] = {name: summary([r[name] for r in rs])
                        for name in ("ctr", "hr", "distinct_items", "steps_per_cpu_s")}
        for arm in runs:
            if arm == "without":
                continue
            res[f"{arm}/without"] = {
                name: summary([a[name] / b[name] for a, b in
                               zip(runs[arm], runs["without"], strict=True)])
                for name in ("ctr", "hr")}
        out["models"][model] = res
    out["load_after"] = os.getloadavg()
    return out


def _fmt(s: dict[str, Any], f: str = ".4f") -> str:
    return f"{s['median']:{f}} [{s['min']:{f}}..{s['max']:{f}}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="rerank,bpr", help=f"of {', '.join(ARMS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--json", type=Path, help="save the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    models = [m for m in args.models.split(",") if m]
    out = bench(models, args.seeds, args.steps, args.warmup, args.k)
    for model, res in out["models"].items():
        for arm, figures in res.items():
            line = ", ".join(f"{name} {_fmt(s, '.3f' if '/' in arm else '.4f')}"
                             for name, s in figures.items() if name in ("ctr", "hr"))
            log.info("%-7s %-18s %s", model, arm, line)
    log.info("load %s -> %s", out["load_before"], out["load_after"])
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
