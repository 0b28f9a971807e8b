"""Publish the online learner to the model store as a new version."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from consumers.worker import Learner
from monitoring.freshness import version_metadata

__all__ = ["RegistryPublisher"]

log = logging.getLogger(__name__)


class _Registry(Protocol):
    def publish_object(self, model: str, obj: Any, *, metadata: Any = None,
                       parent: int | None = None) -> Any: ...


class RegistryPublisher:
    """Pickle, sign and store the learner under ``model``.

    The metadata carries the offsets the version covers, the events seen and the
    prequential scores; ``parent`` is the version the learner was warm-started from.
    """

    def __init__(self, registry: _Registry, model: str, *, parent: int | None = None):
        self.registry = registry
        self.model = model
        self._last: int | None = parent

    def publish(self, learner: Learner, positions: dict[tuple[str, int], int]) -> int:
        """Store ``learner`` as the next version; return its number."""
        score = learner.score()
        metadata = {
            "offsets": {f"{t}:{p}": o for (t, p), o in sorted(positions.items())},
            "events_seen": learner.events_seen,
            "metrics": {
                "rmse": score.rmse,
                "mae": score.mae,
                "rolling_rmse": score.rolling_rmse,
                "rolling_mae": score.rolling_mae,
            },
            "tags": {"learner": "online", "model_kind": learner.model_name},
            **version_metadata(learner),  # newest_event_ts, for event time -> served
        }
        version = self.registry.publish_object(self.model, learner, metadata=metadata,
                                               parent=self._last)
        self._last = version.number
        return int(version.number)
