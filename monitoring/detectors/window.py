"""Detectors that compare a window of observations with a reference window.

Observations are buffered (numbers in a preallocated numpy array, categories as counts);
every ``window`` updates the full window is compared with the reference, then it *becomes*
the reference: the reference rolls forward, so a change alarms once, when it happens, and
the new regime is the next reference. Comparing is the only costly step, once a window.

>>> from monitoring.detectors.psi import PSIDetector
>>> det = PSIDetector(window=100)
>>> alarms = [i for i in range(600) if det.update(float(i >= 300) + (i % 10) / 10)]
>>> alarms
[399]
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from monitoring.detectors.base import Detector

__all__ = ["WindowDetector"]

OTHER = "__other__"


class WindowDetector(Detector):
    """Base of the reference-window detectors (PSI, KS, chi-squared).

    ``window`` observations per comparison; ``categorical`` observations are labels
    (at most ``max_categories`` distinct, the rest counted as one); ``cooldown`` defaults
    to two windows, so a change straddling two windows raises one alarm.
    """

    categorical = False

    def __init__(self, window: int = 1000, *, categorical: bool | None = None,
                 max_categories: int = 64, min_events: int = 0, cooldown: int | None = None):
        if window < 2:
            raise ValueError(f"window={window}: expected at least 2 observations")
        super().__init__(min_events=min_events,
                         cooldown=2 * window if cooldown is None else cooldown)
        self.window = window
        if categorical is not None:
            self.categorical = categorical
        self.max_categories = max_categories
        # zeros, not empty: the partial window is pickled into every version (no heap bytes)
        self._values = np.zeros(0 if self.categorical else window, dtype=float)
        self._counts: Counter[str] = Counter()
        self._k = 0
        self._reference: np.ndarray | Counter[str] | None = None

    def _add(self, x: Any) -> None:
        if self.categorical:
            key = str(x)
            if key not in self._counts and len(self._counts) >= self.max_categories:
                key = OTHER
            self._counts[key] += 1
        else:
            self._values[self._k] = x

    def _fired(self, x: Any) -> bool:
        self._add(x)
        self._k += 1
        if self._k < self.window:
            return False
        current: np.ndarray | Counter[str]
        if self.categorical:
            current, self._counts = self._counts, Counter()
        else:
            current = self._values.copy()
        self._k = 0
        return self._close(current)

    def _close(self, current: np.ndarray | Counter[str]) -> bool:
        reference, self._reference = self._reference, current
        if reference is None:
            return False
        if self.categorical:
            keys = sorted(set(reference) | set(current))  # type: ignore[arg-type]
            ref = np.array([reference[k] for k in keys], dtype=float)  # type: ignore[index]
            cur = np.array([current[k] for k in keys], dtype=float)  # type: ignore[index]
            self._statistic, self._threshold = self._compare(ref, cur)
        else:
            self._statistic, self._threshold = self._compare(reference, current)  # type: ignore[arg-type]
        return self._statistic > self._threshold

    def update_window(self, xs: Iterable[Any], *, size: int | None = None) -> bool:
        """Compare ``xs`` as one whole window (of any size) with the reference, then roll.

        For samples whose size varies by window (one count per active user, say); nothing
        may be buffered from :meth:`update` at the time. The window counts as ``size``
        updates (default: its length) for ``n``, ``min_events`` and ``cooldown``.

        >>> from monitoring.detectors.psi import PSIDetector
        >>> det = PSIDetector(categorical=True)
        >>> det.update_window(["1", "1", "2"]), det.update_window(["4"] * 5), det.n
        (False, True, 8)
        """
        if self._k:
            raise ValueError(f"{self.name}: {self._k} observations of a window are buffered")
        current: np.ndarray | Counter[str]
        if self.categorical:
            xs = xs if isinstance(xs, list | tuple) else list(xs)  # read twice if folded
            current = Counter(map(str, xs))  # counted in C: the same counts if none is folded
            if len(current) > self.max_categories:
                current = self._folded(xs)
            length = sum(current.values())
        else:
            current = np.asarray(list(xs), dtype=float)
            length = len(current)
        self._n += length if size is None else size
        return self._gate(self._close(current))

    def _folded(self, xs: Iterable[Any]) -> Counter[str]:
        """Counts of ``xs``; labels past the first ``max_categories`` counted as one."""
        current: Counter[str] = Counter()
        for x in xs:
            key = str(x)
            if key not in current and len(current) >= self.max_categories:
                key = OTHER
            current[key] += 1
        return current

    def update_many(self, xs: Iterable[Any]) -> bool:
        """Like :meth:`update` with each of ``xs``, but numbers are copied in bulk.

        Only the update that completes a window runs the test, so feeding whole windows
        costs one copy and one comparison per window.
        """
        data = list(xs) if self.categorical else np.asarray(xs, dtype=float)
        fired, i = False, 0
        while i < len(data):
            take = min(self.window - self._k - 1, len(data) - i)
            if take > 0:
                if self.categorical:
                    chunk = Counter(map(str, data[i:i + take]))
                    if len(self._counts.keys() | chunk.keys()) <= self.max_categories:
                        self._counts.update(chunk)  # counted in C: no key to fold
                    else:
                        for x in data[i:i + take]:
                            self._add(x)
                else:
                    self._values[self._k:self._k + take] = data[i:i + take]
                self._k += take
                self._n += take
                self._detected = False
                i += take
            if i < len(data):
                fired |= self.update(data[i])
                i += 1
        return fired

    @abstractmethod
    def _compare(self, reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
        """(statistic, threshold): samples of numbers, or aligned category counts."""
