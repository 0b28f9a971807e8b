"""Forgetting on slices: how much worse a model gets on old regimes as it learns new ones.

After learning slice (regime) ``i`` the model is scored on every slice ``j <= i``; the
errors fill a lower-triangular matrix ``E[i, j]``. Backward transfer follows GEM
(Lopez-Paz & Ranzato, 2017) but for an *error* (lower is better)::

    BWT = mean over i < T-1 of (E[T-1, i] - E[i, i])

so **positive BWT means forgetting** (old slices got worse after learning new ones) and
negative BWT means learning later slices helped the old ones. (GEM's accuracy BWT has the
opposite sign: there, negative is forgetting.)

>>> t = ForgettingTracker()
>>> t.record([1.0])
>>> t.record([1.2, 0.9])
>>> t.record([1.5, 1.0, 0.8])
>>> round(t.bwt(), 4), t.recent_error, t.old_error
(0.3, 0.8, 1.25)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["ForgettingTracker", "Predictor", "slice_error"]


class Predictor(Protocol):
    """Anything that predicts many (user, item) pairs at once."""

    def predict_many(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        """Predicted values, one per pair."""
        ...


def slice_error(recommender: Predictor, users: Sequence[str], items: Sequence[str],
                values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """``(rmse, mae)`` of ``recommender`` on one slice (NaN for an empty slice).

    >>> class Three:
    ...     def predict_many(self, users, items):
    ...         return np.full(len(users), 3.0)
    >>> slice_error(Three(), ["u", "v"], ["i", "j"], [4.0, 2.0])
    (1.0, 1.0)
    """
    y = np.asarray(values, dtype=np.float64)
    if y.size == 0:
        return math.nan, math.nan
    err = np.asarray(recommender.predict_many(users, items), dtype=np.float64) - y
    return float(np.sqrt(np.mean(err * err))), float(np.mean(np.abs(err)))


class ForgettingTracker:
    """The error matrix ``E[i, j]`` (after learning slice ``i``, on slice ``j <= i``)."""

    def __init__(self, metric: str = "rmse"):
        if metric not in ("rmse", "mae"):
            raise ValueError(f'unknown metric "{metric}"; use rmse or mae')
        self.metric = metric
        self._rows: list[list[float]] = []

    def record(self, errors: Sequence[float]) -> None:
        """Add the errors on slices ``0..i`` measured after learning slice ``i``."""
        if len(errors) != len(self._rows) + 1:
            raise ValueError(f"after slice {len(self._rows)} expected "
                             f"{len(self._rows) + 1} errors, got {len(errors)}")
        self._rows.append([float(e) for e in errors])

    def evaluate(self, recommender: Predictor,
                 slices: Sequence[tuple[Sequence[str], Sequence[str], Sequence[float]]]
                 ) -> list[float]:
        """Score ``recommender`` on slices ``0..i`` (``(users, items, values)`` each), record."""
        k = 0 if self.metric == "rmse" else 1
        errors = [slice_error(recommender, *s)[k] for s in slices[: len(self._rows) + 1]]
        self.record(errors)
        return errors

    @property
    def matrix(self) -> np.ndarray:
        """``E`` as a T x T array, NaN above the diagonal."""
        t = len(self._rows)
        out = np.full((t, t), math.nan)
        for i, row in enumerate(self._rows):
            out[i, : i + 1] = row
        return out

    def bwt(self) -> float:
        """Backward transfer for an error metric; positive = forgetting (NaN for T < 2)."""
        t = len(self._rows)
        if t < 2:
            return math.nan
        last = self._rows[-1]
        return float(np.mean([last[i] - self._rows[i][i] for i in range(t - 1)]))

    @property
    def recent_error(self) -> float:
        """Error on the latest slice after learning it."""
        return self._rows[-1][-1] if self._rows else math.nan

    @property
    def old_error(self) -> float:
        """Mean error on the earlier slices, now (NaN before the second slice)."""
        return float(np.mean(self._rows[-1][:-1])) if len(self._rows) > 1 else math.nan

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state; :meth:`restore` resumes from it."""
        return {"metric": self.metric, "rows": [list(r) for r in self._rows]}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> ForgettingTracker:
        """Rebuild from :meth:`snapshot`."""
        tracker = cls(state["metric"])
        for row in state["rows"]:
            tracker.record(row)
        return tracker
