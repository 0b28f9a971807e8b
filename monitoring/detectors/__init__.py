"""Drift detectors: one protocol, one small file per detector, one registry."""

from monitoring.detectors.base import Detector, DriftDetector, restore
from monitoring.detectors.chi2 import ChiSquaredDetector
from monitoring.detectors.error import ADWINDetector, KSWINDetector, PageHinkleyDetector
from monitoring.detectors.ks import KSDetector
from monitoring.detectors.psi import PSIDetector
from monitoring.detectors.registry import DETECTORS, ERROR_DETECTORS, make

__all__ = ["DETECTORS", "ERROR_DETECTORS", "ADWINDetector", "ChiSquaredDetector", "Detector",
           "DriftDetector", "KSDetector", "KSWINDetector", "PSIDetector", "PageHinkleyDetector",
           "make", "restore"]
