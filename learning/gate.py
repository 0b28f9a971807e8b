"""Promotion gate: a candidate replaces production only if it is not worse, recent or old.

Scores are errors (lower is better) on the recent slice and, optionally, on the old slices
(forgetting). Bounds are relative: ``max_regression=0.02`` allows the candidate's recent
error to be at most 2 % above production's. Pure: no I/O, no clock.

>>> gate = Gate()
>>> gate.decide(SliceScores(recent=0.9, old=1.0), None).promote
True
>>> d = gate.decide(SliceScores(recent=0.9, old=1.2), SliceScores(recent=0.95, old=1.0))
>>> d.promote, d.reason
(False, 'old-slice error 1.2 is 20.0% above production 1 (bound 5.0%)')
"""

from __future__ import annotations

import math

import msgspec

__all__ = ["Gate", "GateDecision", "SliceScores"]


class SliceScores(msgspec.Struct, frozen=True):
    """Errors of one model: on the recent slice and (mean) on the old slices."""

    recent: float
    old: float | None = None


class GateDecision(msgspec.Struct, frozen=True):
    """Whether to promote, and why (a sentence for logs and the model store)."""

    promote: bool
    reason: str


class Gate:
    """Promote when there is no production, or the candidate stays within both bounds."""

    def __init__(self, max_regression: float = 0.02, max_old_regression: float = 0.05):
        if max_regression < 0 or max_old_regression < 0:
            raise ValueError("regression bounds must be >= 0")
        self.max_regression = max_regression
        self.max_old_regression = max_old_regression

    @staticmethod
    def _check(name: str, cand: float, prod: float, bound: float) -> str | None:
        if cand <= prod * (1.0 + bound):
            return None
        rel = (cand - prod) / prod if prod > 0 else math.inf
        return f"{name} error {cand:g} is {rel:.1%} above production {prod:g} (bound {bound:.1%})"

    def decide(self, candidate_scores: SliceScores,
               production_scores: SliceScores | None) -> GateDecision:
        """Compare ``candidate_scores`` with ``production_scores`` (None: no production)."""
        c, p = candidate_scores, production_scores
        if not math.isfinite(c.recent) or (c.old is not None and not math.isfinite(c.old)):
            return GateDecision(False, f"candidate has non-finite errors {c}")
        if p is None:
            return GateDecision(True, "no production model")
        if not math.isfinite(p.recent):
            return GateDecision(True, f"production has non-finite errors {p}")
        failure = self._check("recent-slice", c.recent, p.recent, self.max_regression)
        if failure is None and c.old is not None and p.old is not None:
            failure = self._check("old-slice", c.old, p.old, self.max_old_regression)
        if failure is not None:
            return GateDecision(False, failure)
        return GateDecision(True, f"recent-slice error {c.recent:g} vs production "
                                  f"{p.recent:g}, old {c.old} vs {p.old}: within bounds")
