"""The simulated feedback loop: common random numbers, arms that differ only by negatives."""

from __future__ import annotations

import numpy as np

from bench import feedback
from stream.synthetic_implicit import ImplicitStream


def test_the_world_clicks_by_the_hidden_tastes() -> None:
    stream = ImplicitStream(n_events=300, drift_at=(), seed=1)
    world = feedback.World(stream)
    mine = next(iter(world.top[0]))
    other = next(i for i in range(stream.n_items) if i not in world.top[0])
    after = int(stream._next[other][0])
    assert world.click_probability(0, mine, None) == world.base + world.taste
    assert world.click_probability(0, other, None) == world.base
    if after not in world.top[0]:
        assert world.click_probability(0, after, other) == world.base + world.follow


def test_arms_are_deterministic_and_only_the_negatives_arm_learns_them() -> None:
    stream = ImplicitStream(n_events=1500, drift_at=(), seed=2)
    world = feedback.World(stream)
    warm, t0, last = feedback.warm_up("rerank", stream, 1500, 2)
    runs = {arm: feedback.run_arm(warm, world, arm, 150, 10, 2, t0, last)
            for arm in ("without", "discount", "with")}
    again = feedback.run_arm(warm, world, "with", 150, 10, 2, t0, last)
    assert {k: v for k, v in again.items() if "cpu" not in k} == \
        {k: v for k, v in runs["with"].items() if "cpu" not in k}
    assert runs["without"]["negatives"] == 0
    assert runs["with"]["negatives"] == runs["with"]["shown"] - runs["with"]["clicks"] > 0
    for r in runs.values():
        assert 0 < r["ctr"] < 1 and 0 < r["hr"] <= 1 and r["shown"] == 1500
    assert runs["with"]["shown"] - runs["with"]["clicks"] > 0
    out = feedback.bench(["bpr"], seeds=1, steps=40, warmup=500, k=5)
    assert set(out["models"]["bpr"]) == {"without", "with", "with/without"}
    assert np.isfinite(out["models"]["bpr"]["with/without"]["ctr"]["median"])
