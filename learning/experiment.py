"""The forgetting experiment: fine-tuning without replay, with replay, and full retraining.

A synthetic stream with known regime changes (by default a *population* drift: each
regime brings other users and other popular items, while tastes stay the same) is
learned regime by regime, one round per regime through the slow learner's one round loop
(:func:`learning.rounds.run_round`, with the stream split by the one hold-back rule). After
each regime every strategy is scored on the held-back share of every regime seen so far
(:class:`~learning.forgetting.ForgettingTracker`), which gives the recent-slice error, the
old-slice error and the backward transfer (BWT, positive = forgetting). Full retraining is
a round of a fresh model on every training sample so far, without replay.

>>> table = forgetting_experiment(n_events=6000, regimes=2, n_users=120, n_items=150,
...                               epochs=2, seed=1)
>>> sorted(table), sorted(table["replay"])
(['full_retrain', 'no_replay', 'replay'], ['bwt', 'old', 'recent', 'seconds'])
"""

from __future__ import annotations

import time
from collections.abc import Callable

from learning.finetune import FineTuner
from learning.forgetting import ForgettingTracker
from learning.gate import Gate
from learning.replay import ReplayBuffer
from learning.rounds import HoldBack, RoundBatch, Samples, run_round
from learning.torch_models import DeepRecommender
from stream.synthetic import SyntheticStream

__all__ = ["STRATEGIES", "forgetting_experiment", "verdict"]

STRATEGIES = ("no_replay", "replay", "full_retrain")


def _split(stream: SyntheticStream, holdout_every: int) -> list[RoundBatch]:
    """One batch per regime: its training samples and its held-back slice."""
    batches = [RoundBatch() for _ in range(len(stream.drift_points) + 1)]
    split = HoldBack(holdout_every)
    for i, event in enumerate(stream):
        batches[stream.regime_of(i)].add(event, split.hold())
    return batches


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
    batches = _split(stream, holdout_every)

    def tuner(ratio: float) -> FineTuner:
        rec = DeepRecommender(kind, n_factors=n_factors, clip=(1.0, 5.0), seed=seed)
        return FineTuner(rec, lr=lr, batch_size=batch_size, epochs_per_round=epochs,
                         replay_ratio=ratio, device=device, seed=seed)

    gate = Gate()
    results: dict[str, dict[str, float]] = {}
    for strategy in STRATEGIES:
        started = time.perf_counter()
        tracker = ForgettingTracker(max_slices=regimes, max_samples=n_events)
        ft = tuner(replay_ratio if strategy == "replay" else 0.0)
        buffer = ReplayBuffer(replay_capacity, seed=seed) if strategy == "replay" else None
        for r, batch in enumerate(batches):
            if strategy == "full_retrain":  # a fresh model on everything so far
                ft = tuner(0.0)
                seen = sum((b.fresh_samples for b in batches[: r + 1]), Samples())
                batch = RoundBatch(seen, batch.held)
            run_round(ft, buffer, batch, tracker, gate, None)
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
