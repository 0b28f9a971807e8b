"""The forgetting experiment: fine-tuning without replay, with replay, and full retraining.

A synthetic stream with known regime changes (by default a *population* drift: each
regime brings other users and other popular items, while tastes stay the same) is
learned regime by regime. After each regime every strategy is scored on a held-back
share of every regime seen so far (:class:`~learning.forgetting.ForgettingTracker`), which
gives the recent-slice error, the old-slice error and the backward transfer (BWT,
positive = forgetting).

>>> table = forgetting_experiment(n_events=6000, regimes=2, n_users=120, n_items=150,
...                               epochs=2, seed=1)
>>> sorted(table), sorted(table["replay"])
(['full_retrain', 'no_replay', 'replay'], ['bwt', 'old', 'recent', 'seconds'])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from learning.finetune import FineTuner
from learning.forgetting import ForgettingTracker
from learning.replay import ReplayBuffer
from learning.torch_models import DeepRecommender
from stream.synthetic import SyntheticStream

__all__ = ["STRATEGIES", "forgetting_experiment", "verdict"]

STRATEGIES = ("no_replay", "replay", "full_retrain")
Columns = tuple[list[str], list[str], np.ndarray, np.ndarray]


def _columns(events: list[Any]) -> Columns:
    return ([e.user_id for e in events], [e.item_id for e in events],
            np.asarray([e.value for e in events], dtype=np.float32),
            np.asarray([e.ts for e in events], dtype=np.float64))


def _split(stream: SyntheticStream, holdout_every: int) -> tuple[list[Columns], list[Columns]]:
    """Per regime: (training columns, held-back columns)."""
    n_regimes = len(stream.drift_points) + 1
    train: list[list[Any]] = [[] for _ in range(n_regimes)]
    held: list[list[Any]] = [[] for _ in range(n_regimes)]
    for i, event in enumerate(stream):
        (held if i % holdout_every == 0 else train)[stream.regime_of(i)].append(event)
    return [_columns(t) for t in train], [_columns(h) for h in held]


def forgetting_experiment(
    *,
    n_events: int = 60_000,
    regimes: int = 3,
    n_users: int = 600,
    n_items: int = 800,
    drift_kind: str = "population",
    kind: str = "mf",
    n_factors: int = 16,
    epochs: int = 5,
    batch_size: int = 512,
    lr: float = 0.01,
    replay_capacity: int = 50_000,
    replay_ratio: float = 1.0,
    holdout_every: int = 10,
    device: str = "cpu",
    seed: int = 0,
    on_step: Callable[[str, int], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Run every strategy over the same stream; return recent/old error, BWT, seconds."""
    if regimes < 2:
        raise ValueError("the experiment needs at least 2 regimes")
    drift_at = tuple(n_events * r // regimes for r in range(1, regimes))
    stream = SyntheticStream(n_users=n_users, n_items=n_items, n_events=n_events,
                             drift_at=drift_at, seed=seed,
                             drift_kind=drift_kind)  # type: ignore[arg-type]
    train, held = _split(stream, holdout_every)
    slices = [(h[0], h[1], h[2].tolist()) for h in held]

    def model() -> DeepRecommender:
        return DeepRecommender(kind, n_factors=n_factors, clip=(1.0, 5.0), seed=seed)

    def tuner(rec: DeepRecommender, ratio: float) -> FineTuner:
        return FineTuner(rec, lr=lr, batch_size=batch_size, epochs_per_round=epochs,
                         replay_ratio=ratio, device=device, seed=seed)

    results: dict[str, dict[str, float]] = {}
    for strategy in STRATEGIES:
        started = time.perf_counter()
        tracker = ForgettingTracker()
        rec = model()
        ft = tuner(rec, replay_ratio if strategy == "replay" else 0.0)
        buffer = ReplayBuffer(replay_capacity, seed=seed) if strategy == "replay" else None
        for r in range(regimes):
            if strategy == "full_retrain":
                rec = model()
                ft = tuner(rec, 0.0)
                seen = [np.concatenate([np.asarray(t[k]) for t in train[: r + 1]])
                        for k in range(4)]
                ft.train_full(seen[0].tolist(), seen[1].tolist(), seen[2], seen[3],
                              epochs=epochs)
            else:
                ft.round(*train[r], buffer=buffer)
            tracker.evaluate(rec, slices[: r + 1])
            if on_step is not None:
                on_step(strategy, r)
        results[strategy] = {"recent": tracker.recent_error, "old": tracker.old_error,
                             "bwt": tracker.bwt(), "seconds": time.perf_counter() - started}
    return results


def verdict(results: dict[str, dict[str, float]], *, min_reduction: float = 0.5,
            max_recent_cost: float = 0.02) -> tuple[bool, str]:
    """Judge replay against no replay.

    Passes when replay removes at least ``min_reduction`` of the forgetting (BWT) while its
    recent-slice error is within ``max_recent_cost`` (relative) of no replay's.
    """
    base, rep = results["no_replay"], results["replay"]
    if base["bwt"] <= 0:
        return False, f"no forgetting to reduce: BWT without replay is {base['bwt']:.4f}"
    reduction = 1.0 - rep["bwt"] / base["bwt"]
    cost = rep["recent"] / base["recent"] - 1.0
    ok = reduction >= min_reduction and cost <= max_recent_cost
    return ok, (f"replay removes {reduction:.0%} of the forgetting (BWT {rep['bwt']:.4f} vs "
                f"{base['bwt']:.4f}; above 100% means old slices improved); recent-slice "
                f"error {cost:+.1%} ({rep['recent']:.4f} vs {base['recent']:.4f})")
