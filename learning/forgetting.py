"""Forgetting: how much worse a model gets on old held-back slices as it learns new ones.

The one tracker of the slow learner (the fine-tune worker, ``evaluate --model lifelong``
and the forgetting experiment all use it). After each round the model is scored on the
round's held-back *recent* slice and on the retained *old* slices (the last
``max_slices``, each subsampled to at most ``max_samples``). Each slice keeps the error
the model had right after learning it, so backward transfer follows GEM (Lopez-Paz &
Ranzato, 2017) for an *error* (lower is better), over the retained slices::

    BWT = mean over retained old slices j of (error now on j - error just after learning j)

**Positive BWT means forgetting**; negative means later learning helped the old slices.
Every round's errors also fill the matrix ``E[i, j]`` (after round ``i``, on slice ``j``;
NaN where slice ``j`` was not retained or not yet seen).

>>> class Const:
...     def __init__(self, c): self.c = c
...     def predict_many(self, users, items): return np.full(len(users), self.c)
>>> t = ForgettingTracker(max_slices=2)
>>> s = t.add(Samples(["u"], ["i"], [3.0]), t.score(Const(3.0), Samples(["u"], ["i"], [3.0])))
>>> s.recent_rmse, s.old_rmse, s.bwt
(0.0, nan, nan)
>>> recent = Samples(["v"], ["j"], [4.0])
>>> s = t.add(recent, t.score(Const(4.0), recent))
>>> s.recent_rmse, s.old_rmse, s.bwt  # forgot the first slice: its error rose by 1
(0.0, 1.0, 1.0)
>>> t.matrix.tolist(), t.bwt()
([[0.0, nan], [1.0, 0.0]], 1.0)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from learning.slices import Samples

__all__ = ["ForgettingTracker", "Predictor", "WindowScores", "slice_error"]


class Predictor(Protocol):
    """Anything that predicts many (user, item) pairs at once."""

    def predict_many(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        """Predicted values, one per pair."""
        ...


def slice_error(model: Predictor, samples: Samples) -> tuple[float, float]:
    """``(rmse, mae)`` of ``model`` on ``samples`` (NaN for an empty slice).

    >>> class Three:
    ...     def predict_many(self, users, items):
    ...         return np.full(len(users), 3.0)
    >>> slice_error(Three(), Samples(["u", "v"], ["i", "j"], [4.0, 2.0]))
    (1.0, 1.0)
    """
    y = np.asarray(samples.values, dtype=np.float64)
    if y.size == 0:
        return math.nan, math.nan
    err = np.asarray(model.predict_many(samples.users, samples.items), dtype=np.float64) - y
    return float(np.sqrt(np.mean(err * err))), float(np.mean(np.abs(err)))


class WindowScores(NamedTuple):
    """A model's errors (RMSE) on the recent slice and the retained old slices, and BWT."""

    recent_rmse: float
    recent_mae: float
    old_rmse: float
    bwt: float
    old_errors: tuple[float, ...]


class ForgettingTracker:
    """The last ``max_slices`` held-back slices (each at most ``max_samples``), their errors."""

    def __init__(self, max_slices: int = 8, max_samples: int = 5000):
        if max_slices < 1 or max_samples < 1:
            raise ValueError("max_slices and max_samples must be >= 1")
        self.max_slices = max_slices
        self.max_samples = max_samples
        # (slice index, samples, error just after learning it)
        self._slices: deque[tuple[int, Samples, float]] = deque(maxlen=max_slices)
        self._rows: list[dict[int, float]] = []
        self._last: WindowScores | None = None

    def __len__(self) -> int:
        return len(self._slices)

    def score(self, model: Predictor, recent: Samples) -> WindowScores:
        """Errors of ``model`` on ``recent`` and on every retained old slice; BWT (no change).

        ``old_rmse`` and ``bwt`` are NaN while no old slice is retained.
        """
        recent_rmse, recent_mae = self.errors(model, recent)
        now = [self.errors(model, s)[0] for _, s, _ in self._slices]
        learned = [e for _, _, e in self._slices]
        old = float(np.mean(now)) if now else math.nan
        pairs = [n - e for n, e in zip(now, learned, strict=True)
                 if math.isfinite(n) and math.isfinite(e)]
        bwt = float(np.mean(pairs)) if pairs else math.nan
        return WindowScores(recent_rmse, recent_mae, old, bwt, tuple(now))

    def errors(self, model: Predictor, samples: Samples) -> tuple[float, float]:
        """The two slice errors :meth:`score` reports: RMSE and MAE.

        A subclass may measure others (:class:`~learning.rank_deep.RankingTracker`: ranking).
        """
        return slice_error(model, samples)

    def add(self, recent: Samples, scores: WindowScores) -> WindowScores:
        """Record ``scores`` (of the model that learned ``recent``) and retain ``recent``.

        The oldest slice drops out once ``max_slices`` are held; an empty slice is scored
        (NaN) but not retained. Returns ``scores``.
        """
        index = len(self._rows)
        row = {j: e for (j, _, _), e in zip(self._slices, scores.old_errors, strict=True)}
        row[index] = scores.recent_rmse
        self._rows.append(row)
        self._last = scores
        if len(recent):
            self._slices.append((index, recent.subsample(self.max_samples), scores.recent_rmse))
        return scores

    @property
    def matrix(self) -> np.ndarray:
        """``E`` as a T x T array (T rounds), NaN where not measured."""
        t = len(self._rows)
        out = np.full((t, t), math.nan)
        for i, row in enumerate(self._rows):
            for j, e in row.items():
                out[i, j] = e
        return out

    def bwt(self) -> float:
        """Backward transfer after the latest round; positive = forgetting (NaN before 2)."""
        return self._last.bwt if self._last is not None else math.nan

    @property
    def recent_error(self) -> float:
        """Error on the latest slice after learning it."""
        return self._last.recent_rmse if self._last is not None else math.nan

    @property
    def old_error(self) -> float:
        """Mean error on the retained earlier slices, now (NaN before the second slice)."""
        return self._last.old_rmse if self._last is not None else math.nan

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state; :meth:`restore` resumes from it."""
        return {"max_slices": self.max_slices, "max_samples": self.max_samples,
                "slices": [[j, s.users, s.items, s.values, s.ts, e] for j, s, e in self._slices],
                "rows": [[[j, e] for j, e in row.items()] for row in self._rows],
                "last": None if self._last is None else [*self._last[:4],
                                                         list(self._last.old_errors)]}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> ForgettingTracker:
        """Rebuild from :meth:`snapshot`."""
        t = cls(state["max_slices"], state["max_samples"])
        for j, users, items, values, ts, e in state["slices"]:
            t._slices.append((j, Samples(users, items, values, ts), e))
        t._rows = [{int(j): e for j, e in row} for row in state["rows"]]
        if state["last"] is not None:
            *head, old = state["last"]
            t._last = WindowScores(*head, tuple(old))
        return t
