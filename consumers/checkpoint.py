"""What a published version of the online learner holds: the learner and the worker's state.

A version is the checkpoint a restarted learner resumes from, so besides the learner it
holds what the worker learned about the stream: the window of recent ``event_id`` values (so a
duplicate re-sent across a restart is still dropped) and the data-quality gates' per-user
rate windows. A checkpoint *unpickles to its learner* (what subscribers serve, unchanged),
with the worker state riding along in the learner's ``__dict__``; :meth:`Checkpoint.of`
takes it back out on resume. Versions published before (a bare learner) restore with an
empty window. Before pickling, a :class:`Checkpoint` answers ``predict_one`` (and any other
learner attribute) by delegating, so a publisher treats it as the learner.

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
>>> import pickle
>>> served = pickle.loads(pickle.dumps(cp))     # what a subscriber gets
>>> type(served).__name__, Checkpoint.of(served).dedup == ids.snapshot()
('OnlineLearner', True)
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from consumers.finite import learner_non_finite
from learning.deltas import changed_non_finite, delta_capable
from model_store.delta import CHECKPOINT_ATTRIBUTE as _STATE  # where the worker state rides

__all__ = ["Checkpoint", "publish_non_finite"]


def _unpickle(learner: Any, dedup: bytes, quality: dict[str, Any],
              impressions: dict[str, Any] | None = None) -> Any:
    """A checkpoint unpickles to its learner, the worker state attached for the resume."""
    state = getattr(learner, "__dict__", None)
    if isinstance(state, dict):
        state[_STATE] = (dedup, quality, impressions)
    return learner


class Checkpoint:
    """``learner`` plus the worker's ``dedup`` window and ``quality`` gate state.

    ``impressions`` is the impression join's state (:class:`consumers.impressions.ImpressionFeed`)
    when the learner joins impressions, else None.
    """

    def __init__(self, learner: Any, dedup: bytes = b"", quality: dict[str, Any] | None = None,
                 impressions: dict[str, Any] | None = None):
        self.learner = learner
        self.dedup = dedup
        self.quality = dict(quality or {})
        self.impressions = impressions
        # not stored: the gate users touched since the previous version (the worker's
        # QualityGates.take_touched; None: unknown), so a delta diffs only those
        self.quality_touched: dict[str, list[Any]] | None = None

    @classmethod
    def of(cls, obj: Any) -> Checkpoint:
        """The checkpoint ``obj`` came from: the state it carries, or an empty one.

        ``obj`` is a checkpoint, an unpickled one (a learner with the state attached, which
        is taken off it) or a bare learner (published before checkpoints existed).
        """
        if isinstance(obj, Checkpoint):
            return obj
        state = getattr(obj, "__dict__", {})
        found = state.pop(_STATE, (b"", {})) if isinstance(state, dict) else (b"", {})
        return cls(obj, *found)  # (dedup, quality[, impressions]): older versions lack the last

    def __reduce__(self) -> tuple[Any, ...]:
        if self.impressions is None:  # the same pickle as before impressions were joined
            return (_unpickle, (self.learner, self.dedup, self.quality))
        return (_unpickle, (self.learner, self.dedup, self.quality, self.impressions))

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
        return self if serving is None else Checkpoint(serving(), self.dedup, self.quality,
                                                       self.impressions)

    def __getattr__(self, name: str) -> Any:
        # only called for attributes not found here: serve and score through the learner
        if name in ("learner", "dedup", "quality", "impressions") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.learner, name)

    def __repr__(self) -> str:
        return (f"Checkpoint({type(self.learner).__name__}, {len(self.dedup) // 8} recent ids, "
                f"{self.learner.events_seen} events)")


def publish_non_finite(learner: Any) -> str | None:
    """Why ``learner`` must not be published (:func:`consumers.finite.learner_non_finite`).

    A learner that records the rows it touched (:mod:`learning.deltas`) is checked on those
    rows only: every version before was checked, and untouched rows did not change, so the
    check is O(changed rows) instead of a walk of the whole model.

    >>> from learning.online import OnlineLearner
    >>> publish_non_finite(OnlineLearner()) is None
    True
    """
    if not delta_capable(learner):
        return learner_non_finite(learner)
    score = learner.score()
    for name in ("rmse", "mae", "rolling_rmse", "rolling_mae"):
        value = getattr(score, name, 0.0)
        if score.n and not math.isfinite(value):
            return f"score {name} is {value}"
    return changed_non_finite(learner)
