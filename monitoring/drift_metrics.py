"""Metrics of input and score drift (:mod:`monitoring.input_drift`), on a registry passed in.

>>> from prometheus_client import CollectorRegistry
>>> reg = CollectorRegistry()
>>> m = DriftMetrics(reg, model="reco")
>>> m.init([("psi", "value")])
>>> reg.get_sample_value("lifelong_drift_alarms_total",
...                      {"model": "reco", "detector": "psi", "signal": "value"})
0.0
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["DriftMetrics"]


class DriftMetrics:
    """PSI per signal and alarms per detector and signal, bound to one model."""

    def __init__(self, registry: CollectorRegistry, *, model: str):
        self.registry = registry
        self.model = model
        self._psi = Gauge(
            "lifelong_drift_psi", "Population stability index of each input or score signal, "
            "last window against the previous one (above 0.2: a shift).",
            ("model", "signal"), registry=registry)
        self._alarms = Counter(
            "lifelong_drift_alarms", "Input and score drift alarms (de-duplicated), by "
            "detector (psi, ks, chi2) and signal.", ("model", "detector", "signal"),
            registry=registry)

    def init(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Create every (detector, signal) alarm counter at zero, so panels show 0 not gaps."""
        for detector, signal in pairs:
            self._alarms.labels(self.model, detector, signal)

    def psi(self, signal: str) -> Gauge:
        """The PSI gauge of ``signal``."""
        return self._psi.labels(self.model, signal)

    def alarms(self, detector: str, signal: str) -> Counter:
        """The alarm counter of one detector on one signal."""
        return self._alarms.labels(self.model, detector, signal)
