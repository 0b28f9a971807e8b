"""Pearson's chi-squared test of a window of categories against the previous one.

>>> import random
>>> rng = random.Random(0)
>>> det = ChiSquaredDetector(window=500)
>>> kinds = ["rating", "click", "view"]
>>> [i for i in range(4000) if det.update(
...     rng.choices(kinds, [6, 3, 1] if i < 2000 else [3, 3, 4])[0])]
[2499]
"""

from __future__ import annotations

import numpy as np

from monitoring.detectors.stats import chi2_critical, chi_squared
from monitoring.detectors.window import WindowDetector

__all__ = ["ChiSquaredDetector"]


class ChiSquaredDetector(WindowDetector):
    """Alarm when the chi-squared statistic exceeds its critical value at level ``alpha``."""

    name = "chi2"
    categorical = True

    def __init__(self, window: int = 1000, alpha: float = 0.001, *, max_categories: int = 64,
                 min_events: int = 0, cooldown: int | None = None):
        super().__init__(window, categorical=True, max_categories=max_categories,
                         min_events=min_events, cooldown=cooldown)
        self.alpha = alpha

    def _compare(self, reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
        stat, dof = chi_squared(reference, current)
        return stat, chi2_critical(dof, self.alpha)
