"""The two-sample Kolmogorov-Smirnov test of a window of numbers against the previous one.

>>> import random
>>> rng = random.Random(0)
>>> det = KSDetector(window=500, alpha=0.001)
>>> [i for i in range(4000) if det.update(rng.gauss(0 if i < 2000 else 0.5, 1))]
[2499]
"""

from __future__ import annotations

import numpy as np

from monitoring.detectors.stats import ks_critical, ks_statistic
from monitoring.detectors.window import WindowDetector

__all__ = ["KSDetector"]


class KSDetector(WindowDetector):
    """Alarm when the KS statistic exceeds its critical value at level ``alpha``."""

    name = "ks"
    categorical = False

    def __init__(self, window: int = 1000, alpha: float = 0.001, *, min_events: int = 0,
                 cooldown: int | None = None):
        super().__init__(window, categorical=False, min_events=min_events, cooldown=cooldown)
        self.alpha = alpha

    def _compare(self, reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
        return (ks_statistic(reference, current),
                ks_critical(len(reference), len(current), self.alpha))
