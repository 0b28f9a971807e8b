"""What a subscriber serves: anything with ``predict(user, item) -> float``.

Objects the learner publishes expose River's verb ``predict_one(user, item)``;
:func:`as_predictor` adapts them, and passes through objects that already have
``predict``. A ranking model with only the :class:`~learning.scorer.ItemScorer` methods is
adapted by :class:`ItemScores` (the item's entry of ``score_items(user)``). Anything else
cannot serve predictions (``None``).

>>> class Mean:
...     def predict_one(self, user, item):
...         return 3.5
>>> as_predictor(Mean()).predict("u1", "i9")
3.5
>>> as_predictor(b"weights") is None
True
"""

from __future__ import annotations

import threading
from typing import Any, Protocol, runtime_checkable

from model_store.recommend import is_item_scorer

__all__ = ["ItemScores", "PredictOne", "Predictor", "as_predictor"]


@runtime_checkable
class Predictor(Protocol):
    """Scores one (user, item) pair."""

    def predict(self, user: str, item: str) -> float:
        """The predicted rating or score of ``item`` for ``user``."""
        ...


class PredictOne:
    """Adapt an object with ``predict_one(user, item)`` to :class:`Predictor`."""

    __slots__ = ("model",)

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, user: str, item: str) -> float:
        """Call ``predict_one(user, item)`` on the wrapped model."""
        return float(self.model.predict_one(user, item))


class ItemScores:
    """Adapt an ItemScorer: ``predict(user, item)`` is ``score_items(user)[row of item]``.

    An item the model does not know scores ``-inf`` (ranked last by ``rank``). The last
    user's score vector is kept (per thread), so ``rank(user, items)`` computes one vector,
    not one per item; a served version never changes, so the vector cannot go stale.

    >>> import numpy as np
    >>> class Two:
    ...     def item_ids(self): return ["a", "b"]
    ...     def score_items(self, user): return np.array([0.5, 2.0])
    ...     def seen_items(self, user): return np.array([], dtype=np.int64)
    ...     def item_vectors(self): return None
    >>> p = ItemScores(Two())
    >>> p.predict("u", "b"), p.predict("u", "zzz")
    (2.0, -inf)
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self._rows = {item: row for row, item in enumerate(model.item_ids())}
        self._local = threading.local()

    def predict(self, user: str, item: str) -> float:
        """The model's score of ``item`` for ``user``."""
        row = self._rows.get(item)
        if row is None:
            return float("-inf")
        last = getattr(self._local, "last", None)
        if last is None or last[0] != user:
            last = (user, self.model.score_items(user))
            self._local.last = last
        return float(last[1][row])


def as_predictor(obj: Any) -> Predictor | None:
    """``obj`` as a :class:`Predictor`, or ``None`` if it cannot predict."""
    if callable(getattr(obj, "predict_one", None)):
        return PredictOne(obj)
    if callable(getattr(obj, "predict", None)):
        return obj  # type: ignore[no-any-return]
    if is_item_scorer(obj):
        return ItemScores(obj)
    return None
