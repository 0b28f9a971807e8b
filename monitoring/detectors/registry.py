"""Every detector by name: a new detector is one small file plus one line here.

>>> det = make("psi", window=100)
>>> det.name, sorted(DETECTORS)
('psi', ['adwin', 'chi2', 'ks', 'kswin', 'page_hinkley', 'psi'])
"""

from __future__ import annotations

from typing import Any

from monitoring.detectors.base import Detector
from monitoring.detectors.chi2 import ChiSquaredDetector
from monitoring.detectors.error import ADWINDetector, KSWINDetector, PageHinkleyDetector
from monitoring.detectors.ks import KSDetector
from monitoring.detectors.psi import PSIDetector

__all__ = ["DETECTORS", "ERROR_DETECTORS", "make"]

DETECTORS: dict[str, type[Detector]] = {
    "adwin": ADWINDetector,
    "page_hinkley": PageHinkleyDetector,
    "kswin": KSWINDetector,
    "psi": PSIDetector,
    "ks": KSDetector,
    "chi2": ChiSquaredDetector,
}
ERROR_DETECTORS = ("adwin", "page_hinkley", "kswin")  # per-observation tests of the error


def make(name: str, **params: Any) -> Detector:
    """A new detector ``name`` configured with ``params``."""
    try:
        kind = DETECTORS[name]
    except KeyError:
        raise ValueError(f"drift detector {name!r}: expected one of "
                         f"{', '.join(sorted(DETECTORS))}") from None
    return kind(**params)
