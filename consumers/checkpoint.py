"""What a published version of the online learner holds: the learner and the worker's state.

A version is the checkpoint a restarted learner resumes from, so besides the learner it
holds what the worker learned about the stream: the window of recent ``event_id`` values (so a
duplicate re-sent across a restart is still dropped) and the data-quality gates' per-user
rate windows. Serving goes through the learner: :class:`Checkpoint` answers
``predict_one`` (and any other learner attribute) by delegating, so subscribers serve it as
they served the bare learner, and versions published before (a bare learner) still restore
(with an empty window).

>>> from learning.online import OnlineLearner
>>> from consumers.dedup import RecentIds
>>> ids = RecentIds(10)
>>> ids.check_and_add("e1")
False
>>> cp = Checkpoint(OnlineLearner(), ids.snapshot())
>>> cp.events_seen, cp.model_name, abs(round(cp.predict_one("u", "i"), 1))
(0, 'BiasedMF', 0.0)
>>> Checkpoint.of(OnlineLearner()).dedup
b''
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["Checkpoint"]


class Checkpoint:
    """``learner`` plus the worker's ``dedup`` window and ``quality`` gate state."""

    def __init__(self, learner: Any, dedup: bytes = b"", quality: dict[str, Any] | None = None):
        self.learner = learner
        self.dedup = dedup
        self.quality = dict(quality or {})

    @classmethod
    def of(cls, obj: Any) -> Checkpoint:
        """``obj`` if it is a checkpoint, else a checkpoint of the bare learner ``obj``."""
        return obj if isinstance(obj, Checkpoint) else cls(obj)

    @property
    def dedup_sha256(self) -> str:
        """SHA-256 of the dedup window (the version's metadata records it, signed)."""
        return hashlib.sha256(self.dedup).hexdigest()

    def serving(self) -> Checkpoint:
        """What a version holds: the learner's serving object (if it has one), with the windows.

        A learner that publishes a serving object (``LifelongLearner.serving()``) would
        otherwise lose the dedup window from its checkpoint.
        """
        serving = getattr(self.learner, "serving", None)
        return self if serving is None else Checkpoint(serving(), self.dedup, self.quality)

    def __getattr__(self, name: str) -> Any:
        # only called for attributes not found here: serve and score through the learner
        if name in ("learner", "dedup", "quality") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.learner, name)

    def __repr__(self) -> str:
        return (f"Checkpoint({type(self.learner).__name__}, {len(self.dedup) // 8} recent ids, "
                f"{self.learner.events_seen} events)")
