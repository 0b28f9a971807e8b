"""Detectors on the prequential error stream, from River: ADWIN, Page-Hinkley and KSWIN.

Each alarms only when the error got *worse*: a recovery after a drift is a change too, but
nobody should retrain because the model got better.

>>> import random
>>> rng = random.Random(0)
>>> det = KSWINDetector(seed=1, min_events=100, cooldown=1000)
>>> alarms = [i for i in range(4000)
...           if det.update(abs(rng.gauss(0.5 if i < 2000 else 1.5, 0.2)))]
>>> len(alarms), 2000 <= alarms[0] < 2100
(1, True)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from river import drift

from monitoring.detectors.base import Detector

__all__ = ["ADWINDetector", "KSWINDetector", "PageHinkleyDetector"]


class ADWINDetector(Detector):
    """River's ADWIN (``delta``: confidence); alarms when the window's mean error rose."""

    name = "adwin"

    def __init__(self, delta: float = 0.002, *, min_events: int = 500, cooldown: int = 1000):
        super().__init__(min_events=min_events, cooldown=cooldown)
        self.delta = delta
        self._detector = drift.ADWIN(delta=delta)
        self._threshold = delta

    def _fired(self, x: float) -> bool:
        before = self._detector.estimation
        self._detector.update(x)
        self._statistic = self._detector.estimation
        return bool(self._detector.drift_detected and self._detector.estimation > before)

    def alarms_in(self, xs: Iterable[float]) -> list[int]:
        """:meth:`update` over ``xs`` in one loop (a batch's errors); the alarming positions.

        The same updates, statistic and alarms as one :meth:`update` at a time; the
        estimation is read once an update (after it: the next update's "before").

        >>> import random
        >>> rng = random.Random(0)
        >>> xs = [abs(rng.gauss(0.5 if i < 2000 else 1.5, 0.2)) for i in range(4000)]
        >>> one, many = ADWINDetector(min_events=100), ADWINDetector(min_events=100)
        >>> alarms = [i for i, x in enumerate(xs) if one.update(x)]
        >>> many.alarms_in(xs[:1500]) + [1500 + i for i in many.alarms_in(xs[1500:])] == alarms
        True
        >>> many.state() == one.state(), many.alarms == one.alarms
        (True, True)
        """
        det, out = self._detector, []
        before = det.estimation
        helper = det._helper  # River's window itself: ADWIN.update and .estimation, inlined
        n = self._n
        for i, x in enumerate(xs):
            if det._drift_detected:  # ADWIN.update: a window starts afresh after a drift
                det._reset()
                helper = det._helper
            drifted = det._drift_detected = helper.update(x)
            width = helper.get_width()
            after = helper.get_total() / width if width else 0.0
            n += 1
            if drifted and after > before:
                self._n = n
                if self._gate(True):
                    out.append(i)
            else:
                self._detected = False
            before = after
        self._n = n
        self._statistic = before if n else self._statistic
        return out


class PageHinkleyDetector(Detector):
    """River's Page-Hinkley test in ``up`` mode (``threshold``: lambda)."""

    name = "page_hinkley"

    def __init__(self, threshold: float = 50.0, *, min_events: int = 500,
                 cooldown: int = 1000):
        super().__init__(min_events=min_events, cooldown=cooldown)
        self.threshold = threshold
        self._detector = drift.PageHinkley(threshold=threshold, mode="up")
        self._threshold = threshold

    def _fired(self, x: float) -> bool:
        self._detector.update(x)
        return bool(self._detector.drift_detected)


class KSWINDetector(Detector):
    """River's KSWIN (Kolmogorov-Smirnov on a sliding window), up-moves of the error only.

    ``alpha`` is the test's level, ``window_size`` the window, ``stat_size`` the most recent
    part compared with a sample of the rest; ``seed`` makes that sample reproducible.
    """

    name = "kswin"

    def __init__(self, alpha: float = 1e-5, window_size: int = 300, stat_size: int = 50, *,
                 seed: int = 42, min_events: int = 500, cooldown: int = 1000):
        super().__init__(min_events=min_events, cooldown=cooldown)
        self.alpha = alpha
        self.window_size = window_size
        self.stat_size = stat_size
        self.seed = seed
        self._detector = drift.KSWIN(alpha=alpha, window_size=window_size,
                                     stat_size=stat_size, seed=seed)
        self._threshold = alpha

    def _fired(self, x: float) -> bool:
        window = self._detector.window
        old = (list(itertools.islice(window, 0, len(window) - self.stat_size + 1))
               if len(window) >= self.window_size else [])
        self._detector.update(x)
        if not self._detector.drift_detected:
            return False
        self._statistic = self._detector.p_value
        recent = list(self._detector.window)
        return bool(old) and sum(recent) / len(recent) > sum(old) / len(old)
