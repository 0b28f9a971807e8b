"""Held-back evaluation slices over a stream: the recent one and a bounded window of older ones.

A streaming fine-tuner holds back a share of each round's events as that round's *recent
slice*; after the round the slice joins a bounded window of *old slices* (the last
``max_slices``, each subsampled to at most ``max_samples``), together with the error the
model had on it right after learning it. :meth:`SliceWindow.score` then gives, for any
model, the error on a new recent slice, the mean error on the old slices, and backward
transfer as in :mod:`learning.forgetting` (GEM, for an error, so **positive = forgetting**)
restricted to the retained slices: ``mean_j(error now on j - error just after learning j)``.

>>> class Const:
...     def __init__(self, c): self.c = c
...     def predict_many(self, users, items): return np.full(len(users), self.c)
>>> window = SliceWindow(max_slices=2)
>>> first = Slice(["u"], ["i"], np.array([3.0]))
>>> s = window.score(Const(3.0), first)
>>> s.recent_rmse, s.old_rmse, s.bwt
(0.0, nan, nan)
>>> window.add(first, s.recent_rmse)
>>> s = window.score(Const(4.0), Slice(["v"], ["j"], np.array([4.0])))
>>> s.recent_rmse, s.old_rmse, s.bwt  # forgot the first slice: its error rose by 1
(0.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from learning.forgetting import Predictor, slice_error

__all__ = ["Slice", "SliceWindow", "WindowScores"]


class Slice(NamedTuple):
    """Parallel columns of held-back samples: user ids, item ids, values."""

    users: Sequence[str]
    items: Sequence[str]
    values: np.ndarray

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.users)

    def subsample(self, max_samples: int) -> Slice:
        """At most ``max_samples`` samples, evenly spaced (deterministic)."""
        n = len(self.users)
        if n <= max_samples:
            return self
        idx = np.linspace(0, n - 1, max_samples).round().astype(np.int64)
        return Slice([self.users[k] for k in idx], [self.items[k] for k in idx],
                     np.asarray(self.values)[idx])


class WindowScores(NamedTuple):
    """A model's errors on the recent slice and the retained old slices, and BWT."""

    recent_rmse: float
    recent_mae: float
    old_rmse: float
    bwt: float
    old_errors: tuple[float, ...]


class SliceWindow:
    """The last ``max_slices`` held-back slices (each at most ``max_samples``) and their errors."""

    def __init__(self, max_slices: int = 8, max_samples: int = 5000):
        if max_slices < 1 or max_samples < 1:
            raise ValueError("max_slices and max_samples must be >= 1")
        self.max_slices = max_slices
        self.max_samples = max_samples
        self._slices: deque[tuple[Slice, float]] = deque(maxlen=max_slices)

    def __len__(self) -> int:
        return len(self._slices)

    def score(self, model: Predictor, recent: Slice) -> WindowScores:
        """Errors of ``model`` on ``recent`` and on every retained old slice; BWT.

        ``old_rmse`` and ``bwt`` are NaN while no old slice is retained.
        """
        recent_rmse, recent_mae = slice_error(model, *recent)
        now = [slice_error(model, *s)[0] for s, _ in self._slices]
        learned = [e for _, e in self._slices]
        old = float(np.mean(now)) if now else math.nan
        pairs = [n - e for n, e in zip(now, learned, strict=True)
                 if math.isfinite(n) and math.isfinite(e)]
        bwt = float(np.mean(pairs)) if pairs else math.nan
        return WindowScores(recent_rmse, recent_mae, old, bwt, tuple(now))

    def add(self, recent: Slice, error_when_learned: float) -> None:
        """Retain ``recent`` (subsampled) with the error the model had just after learning it.

        The oldest slice drops out once ``max_slices`` are held. Empty slices are ignored.
        """
        if len(recent):
            self._slices.append((recent.subsample(self.max_samples), error_when_learned))
