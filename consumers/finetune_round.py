"""One fine-tune round of the worker: :func:`learning.rounds.run_round`, then publish.

:class:`RoundRunner` takes a :class:`~learning.rounds.RoundBatch` (the fresh samples since
the last round, the recent slice held back from them, and the source positions they
cover), loads what ``production`` serves now, runs the one pure round
(:func:`learning.rounds.run_round`: train, score recent and old slices, gate) and publishes
the candidate as a new ``safetensors`` version with offsets, metrics and tags, moves
``candidate`` to it, and moves ``production`` only when the gate allows.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import msgspec

from consumers.deep_publisher import DeepPublisher
from learning.finetune import FineTuner, RoundReport
from learning.forgetting import ForgettingTracker, WindowScores
from learning.gate import Gate
from learning.replay import ReplayBuffer
from learning.rounds import RoundBatch, ranking_figures, run_round
from model_store.records import encode_offsets
from monitoring.metrics import FineTuneMetrics

__all__ = ["RoundResult", "RoundRunner"]

log = logging.getLogger(__name__)

class RoundResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one round did and decided; errors are RMSE (NaN where there was nothing).

    For a ranking model (``ranking``) the errors are ``1 - NDCG@10`` (``*_rmse``).
    """

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
    ranking: bool = False

    def summary(self) -> str:
        """One line for a terminal or a log."""
        verdict = "promoted" if self.promoted else "not promoted"
        if self.ranking:
            return (f"round {self.round} ({self.trigger}): v{self.version} {verdict} "
                    f"({self.reason}); {self.fresh} fresh + {self.report.replayed} replayed, "
                    f"{self.report.samples_per_second:,.0f} samples/s, loss "
                    f"{self.report.loss:.4f}, recent NDCG@10 {1 - self.recent_rmse:.4f} "
                    f"(production {1 - self.production_recent_rmse:.4f}), old "
                    f"{1 - self.old_rmse:.4f}, {self.seconds:.2f} s")
        return (f"round {self.round} ({self.trigger}): v{self.version} {verdict} "
                f"({self.reason}); {self.fresh} fresh + {self.report.replayed} replayed, "
                f"{self.report.samples_per_second:,.0f} samples/s, loss {self.report.loss:.4f}, "
                f"recent RMSE {self.recent_rmse:.4f}, old {self.old_rmse:.4f}, "
                f"BWT {self.bwt:+.4f}, {self.seconds:.2f} s")


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


class RoundRunner:
    """Train, evaluate, gate and publish rounds of ``finetuner`` (one at a time)."""

    def __init__(self, finetuner: FineTuner, buffer: ReplayBuffer, publisher: DeepPublisher,
                 gate: Gate, *, tracker: ForgettingTracker | None = None,
                 metrics: FineTuneMetrics | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.finetuner = finetuner
        self.buffer = buffer
        self.publisher = publisher
        self.gate = gate
        self.tracker = tracker if tracker is not None else ForgettingTracker()
        self.metrics = metrics
        self._clock = clock
        self.rounds = 0
        self._ranking = hasattr(self.tracker, "error_names")  # a RankingTracker

    def run(self, batch: RoundBatch, trigger: str, *, curriculum_stages: int | None = None,
            seed: int = 0) -> RoundResult:
        """One round on ``batch``; ``curriculum_stages`` trains easy-to-hard (cold start)."""
        started = self._clock()
        current = self.publisher.production()
        prod_version = current[0].number if current is not None else None
        outcome = run_round(self.finetuner, self.buffer, batch, self.tracker, self.gate,
                            current[1] if current is not None else None,
                            curriculum_stages=curriculum_stages, seed=seed)
        cand, prod, decision, report = (outcome.candidate, outcome.production,
                                        outcome.decision, outcome.report)
        self.rounds += 1
        offsets = encode_offsets(batch.positions)
        version = self.publisher.publish(self.finetuner.recommender, metadata=self._metadata(
            batch, trigger, report, cand, prod, prod_version, decision.promote, decision.reason,
            offsets))
        if decision.promote:
            self.publisher.promote(version.number, reason=decision.reason)
        nan = math.nan
        result = RoundResult(
            round=self.rounds, trigger=trigger, version=version.number,
            promoted=decision.promote, reason=decision.reason, report=report,
            recent_rmse=cand.recent_rmse, old_rmse=cand.old_rmse, bwt=cand.bwt,
            production_version=prod_version,
            production_recent_rmse=prod.recent_rmse if prod else nan,
            production_old_rmse=prod.old_rmse if prod else nan,
            seconds=self._clock() - started, fresh=batch.fresh, held_out=batch.held_out,
            offsets=offsets, ranking=self._ranking)
        self._observe(result)
        log.info("%s", result.summary())
        return result

    def _metadata(self, batch: RoundBatch, trigger: str, report: RoundReport, cand: WindowScores,
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
        if self._ranking:  # the tracker's errors are 1 - NDCG@10 / 1 - HR@10
            metrics.update(ranking_figures(cand))
            metrics.update(ranking_figures(prod, "production_"))
        return {
            "offsets": offsets,
            "metrics": {k: _json_float(float(v)) for k, v in metrics.items()},
            "tags": {"learner": "finetune", "model_kind": rec.kind, "trigger": trigger,
                     "task": "ranking" if self._ranking else "rating",
                     "promoted": "yes" if promoted else "no", "device": report.device},
            "gate_reason": reason, "round": self.rounds, "fresh": batch.fresh,
            "held_out": batch.held_out, "replayed": report.replayed,
            "samples_trained": rec.samples_trained, "production_version": prod_version,
            "replay_buffer_samples": len(self.buffer), "old_slices": len(cand.old_errors),
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
