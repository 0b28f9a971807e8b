"""Exceptions of the learning package."""

from __future__ import annotations

__all__ = ["ConfigurationError", "LearningError"]


class LearningError(Exception):
    """Base class for errors raised by ``learning``."""


class ConfigurationError(LearningError, ValueError):
    """A model or learner was configured with a name or value it cannot use."""
