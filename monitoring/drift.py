"""Drift detection on the prequential error stream, as the learner worker uses it.

:class:`ErrorDrift` feeds each absolute prediction error to one of the error detectors of
:mod:`monitoring.detectors` (River's ADWIN, Page-Hinkley or KSWIN) and raises an alarm only
when the error got *worse*: a recovery after a drift is a change too, but nobody should
retrain because the model got better.

>>> import random
>>> rng = random.Random(0)
>>> det = ErrorDrift(min_events=100)
>>> alarms = [i for i in range(4000)
...           if det.update(abs(rng.gauss(0.5 if i < 2000 else 1.5, 0.2)))]
>>> len(alarms) >= 1 and 2000 <= alarms[0] < 2200
True
"""

from __future__ import annotations

from collections.abc import Sequence

from monitoring.detectors.base import Detector
from monitoring.detectors.registry import ERROR_DETECTORS, make

__all__ = ["ErrorDrift"]


class ErrorDrift:
    """Alarm when the mean absolute error rises.

    ``method`` is ``adwin`` (``delta`` is its confidence), ``page_hinkley`` (``threshold``)
    or ``kswin``. No alarm is raised in the first ``min_events`` updates, nor within
    ``cooldown`` updates of the previous alarm.
    """

    def __init__(self, method: str = "adwin", *, delta: float = 0.002, threshold: float = 50.0,
                 min_events: int = 500, cooldown: int = 1000):
        if method not in ERROR_DETECTORS:
            raise ValueError(f"drift method {method!r}: expected one of "
                             f"{', '.join(repr(m) for m in ERROR_DETECTORS)}")
        self.method = method
        self.delta = delta
        self.threshold = threshold
        self.min_events = min_events
        self.cooldown = cooldown
        params = {"adwin": {"delta": delta}, "page_hinkley": {"threshold": threshold}}
        self.detector: Detector = make(method, min_events=min_events, cooldown=cooldown,
                                       **params.get(method, {}))

    def update(self, error: float) -> bool:
        """Add one absolute error; return True when this update raises an alarm."""
        return self.detector.update(error)

    def alarms_in(self, errors: Sequence[float]) -> list[int]:
        """:meth:`update` with each of a batch's ``errors``; the positions that alarmed.

        >>> errors = [0.1] * 300 + [2.0] * 100
        >>> one, det = ErrorDrift(min_events=10), ErrorDrift(min_events=10)
        >>> det.alarms_in(errors) == [i for i, e in enumerate(errors) if one.update(e)], det.n
        (True, 400)
        """
        return self.detector.alarms_in(errors)

    @property
    def alarms(self) -> list[int]:
        """The 0-based update index of each alarm."""
        return self.detector.alarms

    @property
    def n(self) -> int:
        """Errors seen so far."""
        return self.detector.n
