"""The drift detector protocol, and the base class that de-duplicates alarms.

A detector takes one observation at a time with River's verbs: :meth:`~DriftDetector.update`
then :attr:`~DriftDetector.drift_detected`, which is true only for the update that raised a
*new* alarm (not within ``cooldown`` updates of the previous one, not in the first
``min_events``). :meth:`~DriftDetector.state` gives the figures to export (the last
statistic, its threshold, updates and alarms so far); :meth:`~Detector.snapshot` and
:func:`restore` checkpoint it (continuing a restored detector equals never stopping).

>>> class Above(Detector):
...     name = "above"
...     def _fired(self, x): return x > 1.0
>>> det = Above(cooldown=3)
>>> [i for i, x in enumerate([0, 2, 2, 2, 2, 0]) if det.update(x)]
[1, 4]
>>> det.state()["alarms"]
2.0
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

__all__ = ["Detector", "DriftDetector", "restore"]


@runtime_checkable
class DriftDetector(Protocol):
    """What every detector does: take observations, say when a new change was seen."""

    name: str

    def update(self, x: Any) -> None:
        """Add one observation (an error, a value, a category)."""
        ...

    @property
    def drift_detected(self) -> bool:
        """True right after the update that raised a new (de-duplicated) alarm."""
        ...

    def state(self) -> dict[str, float]:
        """Figures to export: ``n``, ``alarms``, ``statistic``, ``threshold``."""
        ...

    def snapshot(self) -> bytes:
        """The detector's whole state; :func:`restore` resumes from it."""
        ...


class Detector(ABC):
    """Base of the detectors here: counts updates and gates raw detections into alarms.

    Subclasses implement :meth:`_fired` (has the underlying test detected a change at this
    update?) and may set ``_statistic`` / ``_threshold`` for :meth:`state`.
    """

    name = "detector"

    def __init__(self, *, min_events: int = 0, cooldown: int = 0):
        if min_events < 0 or cooldown < 0:
            raise ValueError(f"min_events={min_events}, cooldown={cooldown}: expected >= 0")
        self.min_events = min_events
        self.cooldown = cooldown
        self._n = 0
        self._last_alarm: int | None = None
        self._detected = False
        self._statistic = float("nan")
        self._threshold = float("nan")
        self.alarms: list[int] = []

    @abstractmethod
    def _fired(self, x: Any) -> bool:
        """Feed ``x`` to the underlying test; True when it detects a change now."""

    def update(self, x: Any) -> bool:
        """Add one observation; also returns :attr:`drift_detected` for convenience."""
        fired = self._fired(x)
        self._n += 1
        return self._gate(fired)

    def _gate(self, fired: bool) -> bool:
        """Turn a raw detection at the current update into an alarm, or not."""
        recent = self._last_alarm is not None and self._n - self._last_alarm < self.cooldown
        self._detected = fired and self._n >= self.min_events and not recent
        if self._detected:
            self._last_alarm = self._n
            self.alarms.append(self._n - 1)
        return self._detected

    def update_many(self, xs: Iterable[Any]) -> bool:
        """:meth:`update` with each of ``xs`` in turn; True if any raised an alarm."""
        fired = False
        for x in xs:
            fired |= self.update(x)
        return fired

    def alarms_in(self, xs: Iterable[Any]) -> list[int]:
        """:meth:`update` with each of ``xs`` in turn; the positions in ``xs`` that alarmed.

        >>> class Above(Detector):
        ...     name = "above"
        ...     def _fired(self, x): return x > 1.0
        >>> Above(cooldown=3).alarms_in([0, 2, 2, 2, 2, 0])
        [1, 4]
        """
        update = self.update
        return [i for i, x in enumerate(xs) if update(x)]

    @property
    def drift_detected(self) -> bool:
        """True right after the update that raised a new alarm."""
        return self._detected

    @property
    def n(self) -> int:
        """Observations seen so far."""
        return self._n

    def state(self) -> dict[str, float]:
        """``n``, ``alarms``, the last ``statistic`` and its ``threshold`` (NaN if none)."""
        return {"n": float(self._n), "alarms": float(len(self.alarms)),
                "statistic": float(self._statistic), "threshold": float(self._threshold)}

    def snapshot(self) -> bytes:
        """Pickle the detector (configuration and learned state)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)


def restore(blob: bytes) -> Detector:
    """Resume a detector from :meth:`Detector.snapshot` (trusted bytes only: pickle).

    >>> from monitoring.detectors.error import ADWINDetector
    >>> det = ADWINDetector()
    >>> _ = det.update(0.5)
    >>> restore(det.snapshot()).n
    1
    """
    obj = pickle.loads(blob)
    if not isinstance(obj, Detector):
        raise TypeError(f"not a drift detector snapshot: {type(obj).__name__}")
    return obj
