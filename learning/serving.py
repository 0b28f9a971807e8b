"""What a lifelong model publishes: the serving object, not the learner with its scorers.

:class:`LifelongModel` is everything that predicts: River's online recommender, the deep
model being served (a frozen :class:`~learning.blend.DeepView` with its per-user
:class:`~learning.blend.FoldIn`) and the blend weights. :meth:`LifelongModel.step`
predicts an event and then learns it everywhere (River, fold-in, blend), so a model loaded
from the store and driven by a restarted :class:`~learning.lifelong.LifelongLearner`
predicts exactly as the one that published it would have. The trainer, its replay buffer,
the held-back slices and the prequential scores stay in the learner.

Old blobs: releases before the codec table (``format_version`` 0) pickled the whole
``learning.lifelong.LifelongLearner``; :data:`MOVED` sends those classes here, where
:class:`LegacyLifelongLearner` turns such a pickle into a :class:`LifelongModel` on load.

>>> from learning.models import Recommender
>>> m = LifelongModel(Recommender("BiasedMF", seed=1), clip=(1.0, 5.0))
>>> m.step("u1", "i1", 4.0)[0]  # before learning: River alone (0, clipped), no deep model
1.0
>>> 1.0 <= m.predict_one("u1", "i1") <= 5.0
True
"""

from __future__ import annotations

from typing import Any

from learning.blend import BlendWeights, DeepView, FoldIn
from learning.models import Recommender, clip
from learning.torch_models import DeepRecommender

__all__ = ["MOVED", "LegacyLifelongLearner", "LifelongModel"]


class LifelongModel:
    """River + deep model with user fold-in, blended by recent error; ``predict_one``.

    ``deep`` may be swapped from another thread (:meth:`set_deep`): view, fold-in and
    version change as one reference.
    """

    def __init__(self, online: Recommender, *, clip: tuple[float, float] | None = None,
                 fold_lr: float = 0.05, fold_l2: float = 0.02, blend_window: int = 500):
        self.online = online
        self.clip = clip
        self.fold_lr = fold_lr
        self.fold_l2 = fold_l2
        self.weights = BlendWeights(window=blend_window)
        self._serving: tuple[DeepView, FoldIn, int | None] | None = None
        self.events_seen = 0

    @property
    def model_name(self) -> str:
        """``lifelong:<River model>``."""
        return f"lifelong:{self.online.name}"

    def set_deep(self, deep: DeepRecommender | DeepView, version: int | None = None) -> None:
        """Serve a new deep model; fold-in corrections start over (it learned them)."""
        view = deep if isinstance(deep, DeepView) else DeepView.of(deep)
        self._serving = (view, FoldIn(self.fold_lr, self.fold_l2), version)

    @property
    def deep(self) -> DeepView | None:
        """The deep model being served, if any."""
        return self._serving[0] if self._serving else None

    @property
    def fold(self) -> FoldIn | None:
        """The per-user corrections of the deep model being served."""
        return self._serving[1] if self._serving else None

    @property
    def deep_version(self) -> int | None:
        """The version (or round) of the deep model being served."""
        return self._serving[2] if self._serving else None

    def _blend(self, p_online: float, p_deep: float | None) -> float:
        if p_deep is None:
            return p_online
        return clip(self.weights.blend(p_online, p_deep), self.clip)

    def predict_one(self, user: str, item: str) -> float:
        """The blended prediction."""
        serving = self._serving
        p_deep = serving[0].predict(user, item, serving[1]) if serving else None
        return self._blend(clip(self.online.predict_one(user, item), self.clip), p_deep)

    def step(self, user: str, item: str, value: float,
             context: Any = None) -> tuple[float, float, float | None]:
        """Predict, then learn ``(user, item, value)``: ``(blend, online, deep or None)``."""
        serving = self._serving
        p_deep = serving[0].predict(user, item, serving[1]) if serving else None
        p_online = clip(self.online.predict_one(user, item, context), self.clip)
        y_hat = self._blend(p_online, p_deep)
        self.online.learn_one(user, item, value, context)
        if serving is not None and p_deep is not None:
            self.weights.update(value, p_online, p_deep)
            serving[1].update(serving[0], user, item, value)
        self.events_seen += 1
        return y_hat, p_online, p_deep


class LegacyLifelongLearner:
    """A ``learning.lifelong.LifelongLearner`` pickled by a release before the codec table."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.state = state

    def __upgrade__(self) -> LifelongModel:
        s = self.state
        model = LifelongModel(s["online"].model, clip=s["clip"], fold_lr=s["fold_lr"],
                              fold_l2=s["fold_l2"])
        model.weights = s["weights"]
        model._serving = s["_serving"]
        model.events_seen = int(s["events_seen"])
        return model


class _LegacySlice:
    """``learning.lifelong._Slice`` of old pickles (held-back samples; not served)."""


#: (old module, old class) -> (format version that moved it, new module, new class)
MOVED: dict[tuple[str, str], tuple[int, str, str]] = {
    ("learning.lifelong", "LifelongLearner"): (1, "learning.serving", "LegacyLifelongLearner"),
    ("learning.lifelong", "_Slice"): (1, "learning.serving", "_LegacySlice"),
}
