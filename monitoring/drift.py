"""Drift detection on the prequential error stream.

:class:`ErrorDrift` feeds each absolute prediction error to River's ADWIN (or Page-Hinkley)
and raises an alarm only when the error got *worse*: a recovery after a drift is a change
too, but nobody should retrain because the model got better.

>>> import random
>>> rng = random.Random(0)
>>> det = ErrorDrift(min_events=100)
>>> alarms = [i for i in range(4000)
...           if det.update(abs(rng.gauss(0.5 if i < 2000 else 1.5, 0.2)))]
>>> len(alarms) >= 1 and 2000 <= alarms[0] < 2200
True
"""

from __future__ import annotations

from river import drift

__all__ = ["ErrorDrift"]


class ErrorDrift:
    """Alarm when the mean absolute error rises.

    ``method`` is ``adwin`` (``delta`` is its confidence) or ``page_hinkley``
    (``threshold``). No alarm is raised in the first ``min_events`` updates, nor within
    ``cooldown`` updates of the previous alarm.
    """

    def __init__(self, method: str = "adwin", *, delta: float = 0.002, threshold: float = 50.0,
                 min_events: int = 500, cooldown: int = 1000):
        if method not in ("adwin", "page_hinkley"):
            raise ValueError(f"drift method {method!r}: expected 'adwin' or 'page_hinkley'")
        self.method = method
        self.delta = delta
        self.threshold = threshold
        self.min_events = min_events
        self.cooldown = cooldown
        self._detector = (drift.ADWIN(delta=delta) if method == "adwin"
                          else drift.PageHinkley(threshold=threshold, mode="up"))
        self._n = 0
        self._last_alarm = -cooldown
        self._mean_before = 0.0
        self.alarms: list[int] = []

    def update(self, error: float) -> bool:
        """Add one absolute error; return True when this update raises an alarm."""
        det = self._detector
        before = det.estimation if isinstance(det, drift.ADWIN) else self._mean_before
        det.update(error)
        self._n += 1
        self._mean_before += (error - self._mean_before) / self._n
        if not det.drift_detected or self._n < self.min_events:
            return False
        worse = not isinstance(det, drift.ADWIN) or det.estimation > before
        if not worse or self._n - self._last_alarm < self.cooldown:
            return False
        self._last_alarm = self._n
        self.alarms.append(self._n - 1)
        return True

    @property
    def n(self) -> int:
        """Errors seen so far."""
        return self._n
