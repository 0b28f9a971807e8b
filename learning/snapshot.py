"""Snapshot and restore by pickle, for learners and running figures that checkpoint whole.

>>> from learning.online import OnlineLearner
>>> learner = OnlineLearner(seed=1)
>>> OnlineLearner.restore(learner.snapshot()).events_seen
0
>>> from learning.ranking_metrics import RankingPrequential
>>> RankingPrequential.restore(learner.snapshot())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
TypeError: snapshot holds OnlineLearner, not RankingPrequential
"""

from __future__ import annotations

import pickle
from typing import Self

__all__ = ["PickleSnapshot"]


class PickleSnapshot:
    """``snapshot()`` pickles the whole object; ``restore(blob)`` resumes from it.

    Continuing a restored object equals an uninterrupted run (each user's tests check it).
    The blob is pickle: only pass bytes you produced or whose signature the model store
    verified.
    """

    def snapshot(self) -> bytes:
        """Serialise the whole object; see :meth:`restore`."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, blob: bytes) -> Self:
        """Resume from :meth:`snapshot` (refuses a snapshot of another class)."""
        obj = pickle.loads(blob)
        if not isinstance(obj, cls):
            raise TypeError(f"snapshot holds {type(obj).__name__}, not {cls.__name__}")
        return obj
