"""What a subscriber serves: anything with ``predict(user, item) -> float``.

Objects the learner publishes expose River's verb ``predict_one(user, item)``;
:func:`as_predictor` adapts them, and passes through objects that already have
``predict``. Anything else cannot serve predictions (``None``).

>>> class Mean:
...     def predict_one(self, user, item):
...         return 3.5
>>> as_predictor(Mean()).predict("u1", "i9")
3.5
>>> as_predictor(b"weights") is None
True
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["PredictOne", "Predictor", "as_predictor"]


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


def as_predictor(obj: Any) -> Predictor | None:
    """``obj`` as a :class:`Predictor`, or ``None`` if it cannot predict."""
    if callable(getattr(obj, "predict_one", None)):
        return PredictOne(obj)
    if callable(getattr(obj, "predict", None)):
        return obj  # type: ignore[no-any-return]
    return None
