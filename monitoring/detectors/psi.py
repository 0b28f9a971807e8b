"""PSI (population stability index) of a window against the previous one.

>>> import random
>>> rng = random.Random(0)
>>> det = PSIDetector(window=500, threshold=0.2)
>>> [i for i in range(4000) if det.update(rng.gauss(0 if i < 2000 else 1, 1))]
[2499]
"""

from __future__ import annotations

import numpy as np

from monitoring.detectors.stats import psi, psi_numeric
from monitoring.detectors.window import WindowDetector

__all__ = ["PSIDetector"]


class PSIDetector(WindowDetector):
    """Alarm when PSI exceeds ``threshold`` (0.2 by default: a shift by the usual rule).

    Numbers are bucketed into ``bins`` at the reference's quantiles; categories are their
    own buckets.
    """

    name = "psi"

    def __init__(self, window: int = 1000, threshold: float = 0.2, *, bins: int = 10,
                 categorical: bool | None = None, max_categories: int = 64,
                 min_events: int = 0, cooldown: int | None = None):
        super().__init__(window, categorical=categorical, max_categories=max_categories,
                         min_events=min_events, cooldown=cooldown)
        self.threshold = threshold
        self.bins = bins

    def _compare(self, reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
        if self.categorical:
            return psi(reference, current), self.threshold
        return psi_numeric(reference, current, self.bins), self.threshold
