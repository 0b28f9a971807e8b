"""The online (fast) learner: predict, score, then learn, on every event.

>>> from stream.schema import Event
>>> learner = OnlineLearner("BiasedMF", seed=3)
>>> for i in range(4):
...     _ = learner.learn_one(Event(f"e{i}", "u1", "i1", "rating", 4.0, float(i)))
>>> learner.score().n
4
>>> clone = OnlineLearner.restore(learner.snapshot())
>>> clone.predict_one("u1", "i1") == learner.predict_one("u1", "i1")
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from learning.erasure import PURE_PREDICT
from learning.models import Recommender, clip
from learning.prequential import Prequential, PrequentialScore
from learning.row_tracking import RowTracking
from learning.snapshot import PickleSnapshot
from stream.schema import Event

__all__ = ["OnlineLearner"]


class OnlineLearner(RowTracking, PickleSnapshot):
    """A River recommender updated per event with prequential scoring.

    ``clip`` bounds predictions (e.g. ``(1, 5)`` for star ratings) before they are scored,
    as a served prediction would be; learning always uses the raw event value.
    """

    def __init__(
        self,
        model: str = "BiasedMF",
        params: Mapping[str, Any] | None = None,
        *,
        seed: int = 42,
        clip: tuple[float, float] | None = None,
        window: int = 1000,
    ):
        self.model_name = model
        self.params = dict(params or {})
        self.seed = seed
        self.clip = clip
        self.window = window
        self.model = Recommender(model, self.params, seed=seed)
        self._preq = Prequential(window)
        self.events_seen = 0
        # ids passed to the model since the last publish (learning.deltas); None: not tracked
        self._dirty_users: set[str] | None = set()
        self._dirty_items: set[str] | None = set()
        self._needs_base = False  # an erasure: the next version must be whole

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)  # a version starts with nothing dirty
        state["_dirty_users"], state["_dirty_items"] = set(), set()
        state["_needs_base"] = False
        state.pop("_untracked_at", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name in ("_dirty_users", "_dirty_items"):  # versions before row deltas
            self.__dict__.setdefault(name, set())
        self.__dict__.setdefault("_needs_base", False)

    def predict_one(self, user: str, item: str) -> float:
        """Predict with the current model, clipped to ``clip``."""
        if self._dirty_users is not None:  # River inserts a row for an unknown id
            self._dirty_users.add(user)
            self._dirty_items.add(item)  # type: ignore[union-attr]
        else:  # untracked: a row may be new, so the next version after tracking is whole
            self._untracked_at = -1
        return clip(self.model.predict_one(user, item), self.clip)

    def learn_one(self, event: Event) -> float:
        """Predict ``event`` first, score the prediction, then learn from it; return it."""
        user, item = event.user_id, event.item_id
        if self._dirty_users is not None:
            self._dirty_users.add(user)
            self._dirty_items.add(item)  # type: ignore[union-attr]
        rec = self.model
        river = rec._model
        pure = None if rec._features else PURE_PREDICT.get(type(river))
        if pure is None:  # a factorisation machine (features), or another River model
            y_pred = rec.predict_one(user, item, event.context)
        else:  # Recommender.predict_one's own path for these models, without its layers
            y_pred = pure(river, user, item)
        bounds = self.clip
        if bounds is not None:
            y_pred = min(max(y_pred, bounds[0]), bounds[1])  # learning.models.clip
        self._preq.update(event.value, y_pred)
        if pure is None:
            rec.learn_one(user, item, event.value, event.context)
        else:
            river.learn_one(user, item, event.value)  # Recommender.learn_one without features
        self.events_seen += 1
        return y_pred

    def score(self) -> PrequentialScore:
        """The prequential figures so far."""
        return self._preq.score()


    def forget_user(self, user: str) -> int:
        """Erase ``user`` from the model (:class:`learning.erasure.Forgettable`).

        Afterwards the user predicts as a cold user would; the prequential scores, which
        hold no per-user state, are kept. State that monitors attach to the learner (the
        input-drift window) is erased too when it offers ``forget_user``. Returns the number
        of entries removed.
        """
        from learning.erasure import Forgettable

        removed = self.model.forget_user(user)
        if self._dirty_users is not None:
            self._dirty_users.add(user)
        self._needs_base = True  # older versions hold the user: the next one is whole
        for value in list(vars(self).values()):
            if value is not self.model and isinstance(value, Forgettable):
                removed += value.forget_user(user)
        return removed
