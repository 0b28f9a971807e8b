"""One fine-tune round, end to end: train, evaluate, gate, publish (no Kafka in here).

:class:`RoundRunner` takes a :class:`Batch` (the fresh samples since the last round, the
recent slice held back from them, and the source positions they cover) and:

1. trains: one :meth:`FineTuner.round` on the fresh samples plus replay (or, for a cold
   start, :func:`learning.curriculum.train_curriculum` easy-to-hard), warm-starting from
   the weights the recommender already has;
2. scores the candidate on the held-back recent slice and on the retained older slices
   (:class:`learning.slices.SliceWindow`: the recent slices of earlier rounds), with
   backward transfer, and scores ``production`` (loaded from the store) on the same slices;
3. publishes the candidate as a new ``safetensors`` version with offsets, metrics and tags,
   moves ``candidate`` to it, and moves ``production`` only when the :class:`Gate` allows.

The fine-tuner's model always continues from its own last candidate (its replay buffer
holds rows of its id tables), promoted or not; the gate only decides what serves.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from consumers.deep_publisher import DeepPublisher
from learning.curriculum import train_curriculum
from learning.finetune import FineTuner, RoundReport
from learning.gate import Gate, SliceScores
from learning.replay import ReplayBuffer
from learning.slices import Slice, SliceWindow, WindowScores
from monitoring.metrics import FineTuneMetrics

__all__ = ["Batch", "RoundResult", "RoundRunner"]

log = logging.getLogger(__name__)

Positions = dict[tuple[str, int], int]


@dataclass
class Batch:
    """Samples gathered between rounds: training columns, the held-back slice, positions."""

    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    held_users: list[str] = field(default_factory=list)
    held_items: list[str] = field(default_factory=list)
    held_values: list[float] = field(default_factory=list)
    positions: Positions = field(default_factory=dict)

    @property
    def fresh(self) -> int:
        """Training samples."""
        return len(self.users)

    @property
    def held_out(self) -> int:
        """Samples held back for evaluation."""
        return len(self.held_users)

    def __len__(self) -> int:
        return self.fresh + self.held_out

    def merge_before(self, later: Batch) -> Batch:
        """A batch of these samples then ``later``'s (a failed round's go back in front)."""
        return Batch(self.users + later.users, self.items + later.items,
                     self.values + later.values, self.ts + later.ts,
                     self.held_users + later.held_users, self.held_items + later.held_items,
                     self.held_values + later.held_values, {**self.positions, **later.positions})

    def held(self) -> Slice:
        """The held-back slice."""
        return Slice(self.held_users, self.held_items, np.asarray(self.held_values, np.float64))


class RoundResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one round did and decided; errors are RMSE (NaN where there was nothing)."""

    round: int
    trigger: str
    version: int
    promoted: bool
    reason: str
    report: RoundReport
    recent_rmse: float
    old_rmse: float
    bwt: float
    production_version: int | None
    production_recent_rmse: float
    production_old_rmse: float
    seconds: float
    fresh: int
    held_out: int
    offsets: dict[str, int]

    def summary(self) -> str:
        """One line for a terminal or a log."""
        verdict = "promoted" if self.promoted else "not promoted"
        return (f"round {self.round} ({self.trigger}): v{self.version} {verdict} "
                f"({self.reason}); {self.fresh} fresh + {self.report.replayed} replayed, "
                f"{self.report.samples_per_second:,.0f} samples/s, loss {self.report.loss:.4f}, "
                f"recent RMSE {self.recent_rmse:.4f}, old {self.old_rmse:.4f}, "
                f"BWT {self.bwt:+.4f}, {self.seconds:.2f} s")


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _merge_reports(reports: list[RoundReport]) -> RoundReport:
    samples = sum(r.samples * r.epochs for r in reports)
    seconds = sum(r.seconds for r in reports)
    loss = sum(r.loss * r.samples * r.epochs for r in reports) / max(samples, 1)
    return RoundReport(
        samples=sum(r.samples for r in reports), fresh=sum(r.fresh for r in reports),
        replayed=sum(r.replayed for r in reports), epochs=reports[-1].epochs, seconds=seconds,
        samples_per_second=samples / max(seconds, 1e-9), loss=loss, device=reports[-1].device,
        new_users=sum(r.new_users for r in reports), new_items=sum(r.new_items for r in reports),
        evicted=sum(r.evicted for r in reports))


class RoundRunner:
    """Train, evaluate, gate and publish rounds of ``finetuner`` (one at a time)."""

    def __init__(self, finetuner: FineTuner, buffer: ReplayBuffer, publisher: DeepPublisher,
                 gate: Gate, *, window: SliceWindow | None = None,
                 metrics: FineTuneMetrics | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.finetuner = finetuner
        self.buffer = buffer
        self.publisher = publisher
        self.gate = gate
        self.window = window or SliceWindow()
        self.metrics = metrics
        self._clock = clock
        self.rounds = 0

    def run(self, batch: Batch, trigger: str, *, curriculum_stages: int | None = None,
            seed: int = 0) -> RoundResult:
        """One round on ``batch``; ``curriculum_stages`` trains easy-to-hard (cold start)."""
        started = self._clock()
        ft = self.finetuner
        if curriculum_stages:
            report = _merge_reports(train_curriculum(
                ft, batch.users, batch.items, batch.values, batch.ts, curriculum_stages,
                buffer=self.buffer, seed=seed))
        else:
            report = ft.round(batch.users, batch.items, batch.values, batch.ts, self.buffer)
        held = batch.held()
        cand = self.window.score(ft.recommender, held)
        prod_version, prod = None, None
        current = self.publisher.production()
        if current is not None:
            prod_version = current[0].number
            prod = self.window.score(current[1], held)
        decision = self.gate.decide(self._gate_scores(cand),
                                    None if prod is None else self._gate_scores(prod))
        self.rounds += 1
        offsets = {f"{t}:{p}": o for (t, p), o in sorted(batch.positions.items())}
        version = self.publisher.publish(ft.recommender, metadata=self._metadata(
            batch, trigger, report, cand, prod, prod_version, decision.promote, decision.reason,
            offsets))
        if decision.promote:
            self.publisher.promote(version.number, reason=decision.reason)
        self.window.add(held, cand.recent_rmse)
        nan = math.nan
        result = RoundResult(
            round=self.rounds, trigger=trigger, version=version.number,
            promoted=decision.promote, reason=decision.reason, report=report,
            recent_rmse=cand.recent_rmse, old_rmse=cand.old_rmse, bwt=cand.bwt,
            production_version=prod_version,
            production_recent_rmse=prod.recent_rmse if prod else nan,
            production_old_rmse=prod.old_rmse if prod else nan,
            seconds=self._clock() - started, fresh=batch.fresh, held_out=batch.held_out,
            offsets=offsets)
        self._observe(result)
        log.info("%s", result.summary())
        return result

    @staticmethod
    def _gate_scores(s: WindowScores) -> SliceScores:
        return SliceScores(recent=s.recent_rmse,
                           old=s.old_rmse if math.isfinite(s.old_rmse) else None)

    def _metadata(self, batch: Batch, trigger: str, report: RoundReport, cand: WindowScores,
                  prod: WindowScores | None, prod_version: int | None, promoted: bool,
                  reason: str, offsets: dict[str, int]) -> dict[str, Any]:
        rec = self.finetuner.recommender
        metrics = {
            "recent_rmse": cand.recent_rmse, "recent_mae": cand.recent_mae,
            "old_rmse": cand.old_rmse, "bwt": cand.bwt, "loss": report.loss,
            "samples_per_second": report.samples_per_second, "train_seconds": report.seconds,
            "production_recent_rmse": prod.recent_rmse if prod else math.nan,
            "production_old_rmse": prod.old_rmse if prod else math.nan,
        }
        return {
            "offsets": offsets,
            "metrics": {k: _json_float(float(v)) for k, v in metrics.items()},
            "tags": {"learner": "finetune", "model_kind": rec.kind, "trigger": trigger,
                     "promoted": "yes" if promoted else "no", "device": report.device},
            "gate_reason": reason, "round": self.rounds, "fresh": batch.fresh,
            "held_out": batch.held_out, "replayed": report.replayed,
            "samples_trained": rec.samples_trained, "production_version": prod_version,
            "replay_buffer_samples": len(self.buffer), "old_slices": len(self.window),
            "config": rec.config(), "finetune": self.finetuner.config(),
        }

    def _observe(self, r: RoundResult) -> None:
        m = self.metrics
        if m is None:
            return
        m.rounds(r.trigger).inc()
        m.round_duration.observe(r.seconds)
        m.samples_per_second.set(r.report.samples_per_second)
        m.loss.set(r.report.loss)
        m.recent_rmse.set(r.recent_rmse)
        m.old_rmse.set(r.old_rmse)
        m.bwt.set(r.bwt)
        m.replay_size.set(len(self.buffer))
        m.version.set(r.version)
        (m.promotions if r.promoted else m.rejections).inc()
        if r.trigger == "drift":
            m.drift_rounds.inc()
