"""What a lifelong model publishes: the serving object, not the learner with its scorers.

:class:`LifelongModel` is everything that predicts: River's online recommender, the deep
model being served (a frozen :class:`~learning.blend.DeepView` with its per-event
:class:`~learning.foldin.Corrections`) and the per-segment blend. :meth:`LifelongModel.step`
predicts an event and then learns it everywhere (River, fold-in, blend), so a model loaded
from the store and driven by a restarted :class:`~learning.lifelong.LifelongLearner`
predicts exactly as the one that published it would have. The trainer, its replay buffer,
the held-back slices and the prequential scores stay in the learner.

Old blobs: releases before the codec table (``format_version`` 0) pickled the whole
``learning.lifelong.LifelongLearner``; :data:`MOVED` sends those classes here, where
:class:`LegacyLifelongLearner` turns such a pickle into a :class:`LegacyLifelongModel` on
load (it predicts as it did; a restarted learner starts a new :class:`LifelongModel`).

>>> from learning.models import Recommender
>>> m = LifelongModel(Recommender("BiasedMF", seed=1), clip=(1.0, 5.0))
>>> m.step("u1", "i1", 4.0)[0]  # before learning: River alone (0, clipped), no deep model
1.0
>>> 1.0 <= m.predict_one("u1", "i1") <= 5.0
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learning.biases import BiasModel
from learning.blend import BlendWeights, DeepView, FoldIn
from learning.foldin import SegmentBlend, UserVectors
from learning.models import Recommender, clip
from learning.torch_models import DeepRecommender

__all__ = ["MOVED", "LegacyLifelongLearner", "LegacyLifelongModel", "LifelongModel"]


class LifelongModel:
    """River + deep side, blended per user segment; ``predict_one``.

    The deep side predicts ``mu + b_u + b_i`` (:class:`~learning.biases.BiasModel`, folded
    in per event and refit over the history each round) plus the deep model's interaction
    ``<p_u, q_i>`` (a frozen :class:`~learning.blend.DeepView`, the user side folded in by
    :class:`~learning.foldin.UserVectors`). ``deep`` may be swapped from another thread
    (:meth:`set_deep`): view, user vectors and version change as one reference.
    """

    def __init__(self, online: Recommender, *, clip: tuple[float, float] | None = None,
                 fold_lr: float = 0.02, fold_l2: float = 0.05, user_prior: float = 3.0,
                 item_prior: float = 2.0, blend_window: int = 2000, segments: int = 8):
        self.online = online
        self.clip = clip
        self.fold_lr = fold_lr
        self.fold_l2 = fold_l2
        self.blend_window = blend_window
        self.biases = BiasModel(user_prior, item_prior)
        self.weights = SegmentBlend(window=blend_window, segments=segments)
        # per segment: how much to trust the deep model over the biases (MSE-optimal, online)
        self.deep_weights = [BlendWeights(window=blend_window, prior=0.0)
                             for _ in range(len(self.weights.weights))]
        self._serving: tuple[DeepView, UserVectors, int | None] | None = None
        self.last_rows = (-1, -1)  # bias rows of the event learned last (for refits)
        self.events_seen = 0

    def config(self) -> dict[str, Any]:
        """The keyword arguments (besides ``online``) that rebuild this model's settings."""
        return {"clip": self.clip, "fold_lr": self.fold_lr, "fold_l2": self.fold_l2,
                "user_prior": self.biases.user_prior, "item_prior": self.biases.item_prior,
                "blend_window": self.blend_window, "segments": self.weights.segments}

    @property
    def model_name(self) -> str:
        """``lifelong:<River model>``."""
        return f"lifelong:{self.online.name}"

    def set_deep(self, deep: DeepRecommender | DeepView, version: int | None = None) -> None:
        """Serve a new deep model; user vector corrections start over (it learned them)."""
        view = deep if isinstance(deep, DeepView) else DeepView.of(deep)
        self._serving = (view, UserVectors(self.fold_lr, self.fold_l2), version)

    @property
    def deep(self) -> DeepView | None:
        """The deep model being served, if any."""
        return self._serving[0] if self._serving else None

    @property
    def fold(self) -> UserVectors | None:
        """The per-user vector corrections of the deep model being served."""
        return self._serving[1] if self._serving else None

    @property
    def deep_version(self) -> int | None:
        """The version (or round) of the deep model being served."""
        return self._serving[2] if self._serving else None

    def history(self, user: str) -> int:
        """Events learned from ``user``."""
        return self.biases.counts(user, "")[0]

    def _deep(self, serving: tuple[DeepView, UserVectors, int | None] | None, user: str,
              item: str, segment: int,
              terms: tuple[float, float] | None = None,
              ) -> tuple[float, float, float, np.ndarray | None]:
        """``(deep side, biases alone, deep model with fold-in, q_i)``.

        ``terms``: the biases' ``(b_u, b_i)`` when the caller looked them up already.
        """
        b_u, b_i = self.biases.terms(user, item) if terms is None else terms
        y = clip(self.biases.mu + b_u + b_i, self.clip)
        if serving is None:
            return y, y, y, None
        view, vecs = serving[0], serving[1]
        # the view's own terms (mu + b_u + b_i) plus the folded-in interaction, one lookup each
        col, row = view.items.get(item), view.users.get(user)
        base = view.mu
        q_i = None
        inter = 0.0
        if col is not None:
            base += float(view.item_bias[col])
            q_i = view.item_vecs[col]
            if row is not None:
                inter = float(view.user_vecs[row] @ q_i)
            vec = vecs._vecs.get(user)
            if vec is not None:
                inter += float(vec @ q_i)
        if row is not None:
            base += float(view.user_bias[row])
        full = clip(base + inter, self.clip)
        return self.deep_weights[segment].blend(full, y), y, full, q_i

    def predict_one(self, user: str, item: str) -> float:
        """The blended prediction."""
        p_online = clip(self.online.predict_one(user, item), self.clip)
        b_u, b_i, n_u, n_i = self.biases.lookup(user, item)
        segment = self.weights.segment(n_u, n_i)
        p_deep = self._deep(self._serving, user, item, segment, (b_u, b_i))[0]
        return clip(self.weights.blend(segment, p_online, p_deep), self.clip)

    def step(self, user: str, item: str, value: float,
             context: Any = None) -> tuple[float, float, float | None]:
        """Predict, then learn ``(user, item, value)``: ``(blend, online, deep)``."""
        serving = self._serving
        biases, bounds = self.biases, self.clip
        b_u, b_i, n_u, n_i = biases.lookup(user, item)
        segment = self.weights.segment(n_u, n_i)
        p_online = self.online.predict_one(user, item, context)
        if bounds is not None:
            p_online = min(max(p_online, bounds[0]), bounds[1])
        p_deep, p_bias, p_full, q_i = self._deep(serving, user, item, segment, (b_u, b_i))
        y_hat = self.weights.step(segment, value, p_online, p_deep)  # blended, then learned
        if bounds is not None:
            y_hat = min(max(y_hat, bounds[0]), bounds[1])
        self.online.learn_one(user, item, value, context)
        if serving is not None:
            self.deep_weights[segment].update(value, p_full, p_bias)
            serving[1].update(serving[0], user, q_i, value - p_full)
        self.last_rows = biases.update(user, item, value, (b_u, b_i))
        self.events_seen += 1
        return y_hat, p_online, p_deep

    def forget_user(self, user: str) -> int:
        """Erase ``user`` (:func:`learning.erasure.forget_lifelong_model`); entries removed."""
        from learning.erasure import forget_lifelong_model

        return forget_lifelong_model(self, user)


class LegacyLifelongModel:
    """The serving part of a release-861a053 lifelong learner: user fold-in, one global blend.

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

    def __upgrade__(self) -> LegacyLifelongModel:
        s = self.state
        model = LegacyLifelongModel(s["online"].model, clip=s["clip"], fold_lr=s["fold_lr"],
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
