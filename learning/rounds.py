"""One fine-tune round, pure: train, score recent and old slices, gate. No I/O in here.

:func:`run_round` is the slow learner's one round, run by the fine-tune worker
(:class:`consumers.finetune_round.RoundRunner` adds publishing) and by
``lifelong evaluate --model lifelong`` (:class:`learning.lifelong.LifelongLearner`, with a
:class:`MemoryDeepStore`), so the figures evaluation reports are those of the system that
runs. A round:

1. trains one :meth:`FineTuner.round` on the fresh samples plus replay (or, for a cold
   start, :func:`learning.curriculum.train_curriculum` easy-to-hard), warm-starting from the
   weights the recommender already has;
2. scores the candidate on the held-back recent slice and on the retained old slices
   (:class:`~learning.forgetting.ForgettingTracker`), and ``production`` on the same slices;
3. asks the :class:`~learning.gate.Gate` whether the candidate may replace production.

For a ranking model the tracker is a :class:`learning.rank_deep.RankingTracker`: the slice
errors are then ``1 - NDCG@10`` and ``1 - HR@10`` (:func:`ranking_figures` names them), so the
same gate compares candidate and production on ranking figures.

The recommender always continues from its own last candidate, promoted or not (its replay
buffer holds rows of its id tables); the gate only decides what serves.

>>> from learning.torch_models import DeepRecommender
>>> from stream.synthetic import SyntheticStream
>>> ft = FineTuner(DeepRecommender(n_factors=4, clip=(1, 5)), device="cpu", batch_size=64)
>>> batch, split = RoundBatch(), HoldBack(10)
>>> for ev in SyntheticStream(n_events=500, seed=1):
...     batch.add(ev, split.hold())
>>> store, tracker = MemoryDeepStore(), ForgettingTracker()
>>> out = run_round(ft, None, batch, tracker, Gate(), store.production())
>>> out.decision.promote, out.fresh, out.held_out, len(tracker)
(True, 450, 50, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgspec

from learning import weights
from learning.curriculum import train_curriculum
from learning.finetune import FineTuner, RoundReport
from learning.forgetting import ForgettingTracker, Predictor, WindowScores
from learning.gate import Gate, GateDecision, SliceScores
from learning.replay import ReplayBuffer
from learning.slices import HoldBack, Samples
from learning.torch_models import DeepRecommender

__all__ = ["HoldBack", "MemoryDeepStore", "RoundBatch", "RoundOutcome", "Samples",
           "merge_reports", "ranking_figures", "run_round"]

Positions = dict[tuple[str, int], int]


@dataclass
class RoundBatch:
    """What one round learns from: fresh samples, the held-back slice, source positions."""

    fresh_samples: Samples = field(default_factory=Samples)
    held: Samples = field(default_factory=Samples)
    positions: Positions = field(default_factory=dict)

    @property
    def fresh(self) -> int:
        """Training samples."""
        return len(self.fresh_samples)

    @property
    def held_out(self) -> int:
        """Samples held back for evaluation."""
        return len(self.held)

    def __len__(self) -> int:
        return self.fresh + self.held_out

    def add(self, event: Any, held: bool, value: float | None = None) -> None:
        """Add an event (``user_id``, ``item_id``, ``value``, ``ts``) as fresh or held back.

        ``value`` replaces the event's (the ranking task trains on its type's weight).
        """
        (self.held if held else self.fresh_samples).append(
            event.user_id, event.item_id, event.value if value is None else value, event.ts)

    def merge_before(self, later: RoundBatch) -> RoundBatch:
        """A batch of these samples then ``later``'s (a failed round's go back in front)."""
        return RoundBatch(self.fresh_samples + later.fresh_samples, self.held + later.held,
                          {**self.positions, **later.positions})


class RoundOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`run_round` did and decided; errors are RMSE (NaN where nothing to score)."""

    report: RoundReport
    candidate: WindowScores
    production: WindowScores | None
    decision: GateDecision
    fresh: int
    held_out: int


def merge_reports(reports: list[RoundReport]) -> RoundReport:
    """One report for several rounds (curriculum stages) trained back to back."""
    samples = sum(r.samples * r.epochs for r in reports)
    seconds = sum(r.seconds for r in reports)
    loss = sum(r.loss * r.samples * r.epochs for r in reports) / max(samples, 1)
    return RoundReport(
        samples=sum(r.samples for r in reports), fresh=sum(r.fresh for r in reports),
        replayed=sum(r.replayed for r in reports), epochs=reports[-1].epochs, seconds=seconds,
        samples_per_second=samples / max(seconds, 1e-9), loss=loss, device=reports[-1].device,
        new_users=sum(r.new_users for r in reports), new_items=sum(r.new_items for r in reports),
        evicted=sum(r.evicted for r in reports))


def _gate_scores(s: WindowScores) -> SliceScores:
    return SliceScores(recent=s.recent_rmse, old=s.old_rmse if math.isfinite(s.old_rmse) else None)


def ranking_figures(scores: WindowScores | None, prefix: str = "") -> dict[str, float]:
    """Ranking figures of a :class:`RankingTracker`'s scores (``recent_ndcg@10`` ...).

    >>> ranking_figures(WindowScores(0.75, 0.5, 1.0, 0.0, ()), "production_")
    {'production_recent_ndcg@10': 0.25, 'production_recent_hr@10': 0.5, \
'production_old_ndcg@10': 0.0}
    """
    if scores is None:
        return {}
    return {f"{prefix}recent_ndcg@10": 1.0 - scores.recent_rmse,
            f"{prefix}recent_hr@10": 1.0 - scores.recent_mae,
            f"{prefix}old_ndcg@10": 1.0 - scores.old_rmse}


def run_round(finetuner: FineTuner, buffer: ReplayBuffer | None, batch: RoundBatch,
              tracker: ForgettingTracker, gate: Gate, production: Predictor | None, *,
              curriculum_stages: int | None = None, seed: int = 0) -> RoundOutcome:
    """Train on ``batch``, score candidate and ``production`` on the slices, gate.

    ``tracker`` retains the batch's held-back slice afterwards (with the candidate's error).
    """
    fresh = batch.fresh_samples
    if curriculum_stages:
        report = merge_reports(train_curriculum(finetuner, *fresh.columns(), curriculum_stages,
                                                buffer=buffer, seed=seed))
    else:
        report = finetuner.round(*fresh.columns(), buffer)
    cand = tracker.score(finetuner.recommender, batch.held)
    prod = tracker.score(production, batch.held) if production is not None else None
    decision = gate.decide(_gate_scores(cand), None if prod is None else _gate_scores(prod))
    tracker.add(batch.held, cand)
    return RoundOutcome(report=report, candidate=cand, production=prod, decision=decision,
                        fresh=batch.fresh, held_out=batch.held_out)


class MemoryDeepStore:
    """An in-process stand-in for the deep model's store: versions, ``production``.

    Keeps a frozen copy of the latest and of the production version only (a copy through
    :mod:`learning.weights`, exactly what a reader of the real store gets back).
    """

    def __init__(self) -> None:
        self._latest: tuple[int, DeepRecommender] | None = None
        self._production: tuple[int, DeepRecommender] | None = None

    def publish(self, recommender: DeepRecommender) -> int:
        """Store a copy of ``recommender`` as the next version; its number."""
        number = self._latest[0] + 1 if self._latest else 1
        codec: Any = weights
        if getattr(recommender, "store_format", None) == "deep-ranking":
            from learning import rank_deep as codec
        self._latest = (number, codec.load(codec.dump(recommender)))
        return number

    def promote(self, number: int) -> None:
        """Point production at version ``number`` (the latest published)."""
        if self._latest is None or self._latest[0] != number:
            raise ValueError(f"version {number} is not the latest published")
        self._production = self._latest

    def production(self) -> DeepRecommender | None:
        """The production model, if any."""
        return self._production[1] if self._production else None

    @property
    def production_version(self) -> int | None:
        """The production version number, if any."""
        return self._production[0] if self._production else None
