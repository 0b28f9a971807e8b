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

from math import sqrt
from typing import Any

import numpy as np

from learning.biases import BiasModel
from learning.blend import BlendWeights, DeepView, FoldIn
from learning.deep_kernel import deep_side, kernel_params
from learning.deep_kernel import kernel as deep_kernel
from learning.erasure import PURE_PREDICT
from learning.foldin import UserVectors
from learning.models import Recommender, clip
from learning.row_tracking import RowTracking
from learning.stacking import StackedBlend
from learning.torch_models import DeepRecommender

__all__ = ["MOVED", "LegacyLifelongLearner", "LegacyLifelongModel", "LifelongModel"]

_UNBOUNDED = (-float("inf"), float("inf"))


class LifelongModel(RowTracking):
    """River + biases + deep side, stacked per user x item segment; ``predict_one``.

    The base prediction is ``p_bias = mu + b_u + b_i`` (:class:`~learning.biases.BiasModel`,
    folded in per event and refit over the history each round). A
    :class:`~learning.stacking.StackedBlend` adds, per segment, a ridge-fitted combination of
    River's prediction, the deep model's (a frozen :class:`~learning.blend.DeepView`, the user
    side folded in by :class:`~learning.foldin.UserVectors`; both minus ``p_bias``) and the
    user's and the item's recent residuals (exponential moving averages of ``y - p_bias``
    with rates ``user_recency`` and ``item_recency``: time-decayed biases) and the user's
    residual spread (the root mean square of the user's past residuals, shrunk with
    ``spread_prior`` pseudo-events towards the all-user one, minus the all-user one: on
    the skewed 0-10 scale of MovieTweetings users whose residuals spread wide rate below
    their shrunk bias), and two implicit signals in the spirit of SVD++ reduced to the
    bias dimension: which items the user rated (the mean bias ``b_i`` of the user's items,
    at the time of each rating, over ``n_u + 1``) and who rated the item (the mean ``b_u``
    of its raters over ``n_i + 1``). ``deep`` may be
    swapped from another thread (:meth:`set_deep`): view, user vectors and version change
    as one reference.
    """

    #: online, deep (each relative to p_bias), user recency, item recency, user spread,
    #: the user's items' mean bias, the item's raters' mean bias, b_i scaled by the spread
    N_FEATURES = 8

    def __init__(self, online: Recommender, *, clip: tuple[float, float] | None = None,
                 fold_lr: float = 0.02, fold_l2: float = 0.05, user_prior: float = 3.0,
                 item_prior: float = 2.0, blend_window: int = 20_000, segments: int = 8,
                 blend_ridge: float = 100.0, blend_refit: int = 1000,
                 user_recency: float = 0.3, item_recency: float = 0.1,
                 spread_prior: float = 2.0, deep_optional: bool = True):
        if spread_prior <= 0:
            raise ValueError("spread_prior must be > 0")
        self.online = online
        self.clip = clip
        self.fold_lr = fold_lr
        self.fold_l2 = fold_l2
        self.blend_window = blend_window
        self.user_recency = user_recency
        self.item_recency = item_recency
        self.spread_prior = spread_prior
        self.biases = BiasModel(user_prior, item_prior)
        # until the first refit: River alone (its offset from the biases with weight 1)
        # ``deep_optional``: the blend leaves the deep model out where it did not pay
        self.weights = StackedBlend(self.N_FEATURES, segments=segments, refit_every=blend_refit,
                                    halflife=blend_window, ridge=blend_ridge, initial=(0, 1.0),
                                    optional=(1,) if deep_optional else ())
        # per user and per item, at the biases' rows (flat lists: no lookup by id per event)
        self._user_recent: list[float] = []  # recent residual
        self._user_squares: list[float] = []  # sum of squared residuals
        self._user_item_bias: list[float] = []  # sum of the b_i of the items rated
        self._item_recent: list[float] = []  # recent residual
        self._item_rater_bias: list[float] = []  # sum of its raters' b_u
        self._spread_sum = 0.0  # everyone's squared residuals, over _spread_n events
        self._spread_n = 0
        # the deep model served: view, user vectors, version and the deep kernel's constants
        self._serving: tuple[DeepView, UserVectors, int | None, np.ndarray] | None = None
        self.last_rows = (-1, -1)  # bias rows of the event learned last (for refits)
        self.events_seen = 0
        self._reset_tracking()

    # versions as deltas (learning.blend_delta): ids learned since the last publish --------
    _TRACKING = ("_dirty_users", "_dirty_items", "_needs_base", "_sent_view", "_pending_view",
                 "_refits_sent", "_untracked_at")

    def _reset_tracking(self) -> None:
        # the ids of the events learned since the last version (None: not tracked, a
        # replica), whether the next version must be whole (an erasure), the deep view the
        # last version holds (a delta re-sends it only when it changed), bias refits then
        self._dirty_users: set[str] | None = set()
        self._dirty_items: set[str] | None = set()
        self._needs_base = False
        serving = self.__dict__.get("_serving")
        self._sent_view = self._pending_view = serving[0] if serving else None
        self._refits_sent = self.biases.refits

    def clear_dirty(self) -> None:
        """A version now holds every row and the deep view: record learned ids afresh."""
        super().clear_dirty()
        self._sent_view = self._pending_view
        self._refits_sent = self.biases.refits

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)  # a version starts with nothing dirty
        for key in self._TRACKING:
            state.pop(key, None)
        serving = self._serving
        self._pending_view = serving[0] if serving else None  # what this version holds
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # format 1 blobs (before the stacked blend): a SegmentBlend and per-segment deep
        # weights; they load with a fresh stacked blend (River alone until its first refit)
        if "deep_weights" in state:
            old = state.pop("weights")
            del state["deep_weights"]
            state["user_recency"], state["item_recency"] = 0.3, 0.1
            state["_recent_user"], state["_recent_item"] = {}, {}
            state["weights"] = StackedBlend(4, segments=old.segments, initial=(0, 1.0))
        if "_user_sums" not in state and "_user_recent" not in state:
            # format 2 blobs (4 features, before the spread and implicit signals): the
            # blend gets the new features with weight 0, so it predicts as it did until
            # its next refit
            state.update(spread_prior=2.0, _user_sums={}, _item_sums={}, _spread_sum=0.0,
                         _spread_n=0)
            while state["weights"].n_features < self.N_FEATURES:
                state["weights"].add_feature()
        serving = state.get("_serving")
        if serving is not None and len(serving) == 3:  # before the kernel's constants
            state["_serving"] = (*serving, self._kernel_params(serving[0], serving[1],
                                                               state["clip"]))
        self.__dict__.update(state)
        if "_user_recent" not in state:  # format 3 blobs: the same sums in dicts keyed by id
            self._rows_from_dicts(state.pop("_recent_user"), state.pop("_user_sums"),
                                  state.pop("_recent_item"), state.pop("_item_sums"))
        self._sync_rows()
        self._reset_tracking()

    def _rows_from_dicts(self, recent_user: dict[str, float], user_sums: dict[str, list[float]],
                         recent_item: dict[str, float], item_sums: dict[str, float]) -> None:
        for key in ("_recent_user", "_user_sums", "_recent_item", "_item_sums"):
            self.__dict__.pop(key, None)
        users = [""] * len(self.biases._nu)
        for user, row in self.biases._users.items():
            users[row] = user
        items = [""] * len(self.biases._ni)
        for item, row in self.biases._items.items():
            items[row] = item
        self._user_recent = [recent_user.get(u, 0.0) if u else 0.0 for u in users]
        sums = [user_sums.get(u, (0.0, 0.0)) if u else (0.0, 0.0) for u in users]
        self._user_squares = [float(x[0]) for x in sums]
        self._user_item_bias = [float(x[1]) for x in sums]
        self._item_recent = [recent_item.get(i, 0.0) if i else 0.0 for i in items]
        self._item_rater_bias = [item_sums.get(i, 0.0) if i else 0.0 for i in items]

    def _sync_rows(self) -> None:
        """One entry per bias row in each per-user and per-item list (new rows: zeros)."""
        for rows, lists in ((len(self.biases._nu), (self._user_recent, self._user_squares,
                                                    self._user_item_bias)),
                            (len(self.biases._ni), (self._item_recent, self._item_rater_bias))):
            for values in lists:
                values.extend([0.0] * (rows - len(values)))

    def user_state(self, user: str) -> tuple[float, float, float]:
        """``(recent residual, sum of squared residuals, sum of the b_i rated)``; 0 if new."""
        row = self.biases._users.get(user)
        if row is None:
            return 0.0, 0.0, 0.0
        return self._user_recent[row], self._user_squares[row], self._user_item_bias[row]

    def item_state(self, item: str) -> tuple[float, float]:
        """``(recent residual, sum of its raters' b_u)``; 0 for a new item."""
        row = self.biases._items.get(item)
        if row is None:
            return 0.0, 0.0
        return self._item_recent[row], self._item_rater_bias[row]

    def forget_rows(self, user: str) -> bool:
        """Zero ``user``'s recent residual and sums (before the biases unlink the row)."""
        self._needs_base = True  # older versions hold the user: the next one is whole
        row = self.biases._users.get(user)
        if row is None:
            return False
        self._user_recent[row] = self._user_squares[row] = self._user_item_bias[row] = 0.0
        return True

    def config(self) -> dict[str, Any]:
        """The keyword arguments (besides ``online``) that rebuild this model's settings."""
        w = self.weights
        return {"clip": self.clip, "fold_lr": self.fold_lr, "fold_l2": self.fold_l2,
                "user_prior": self.biases.user_prior, "item_prior": self.biases.item_prior,
                "blend_window": self.blend_window, "segments": w.segments,
                "blend_ridge": w.ridge, "blend_refit": w.refit_every,
                "user_recency": self.user_recency, "item_recency": self.item_recency,
                "spread_prior": self.spread_prior,
                "deep_optional": bool(self.weights.optional)}

    @property
    def model_name(self) -> str:
        """``lifelong:<River model>``."""
        return f"lifelong:{self.online.name}"

    def set_deep(self, deep: DeepRecommender | DeepView, version: int | None = None) -> None:
        """Serve a new deep model; user vector corrections start over (it learned them)."""
        view = deep if isinstance(deep, DeepView) else DeepView.of(deep)
        vecs = UserVectors(self.fold_lr, self.fold_l2)
        self._serving = (view, vecs, version, self._kernel_params(view, vecs, self.clip))

    @staticmethod
    def _kernel_params(view: DeepView, vecs: UserVectors, bounds: tuple[float, float] | None
                       ) -> np.ndarray:
        return kernel_params(view, vecs, *(bounds if bounds is not None else _UNBOUNDED))

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

    def implicit(self, user: str, item: str, n_u: int, n_i: int
                 ) -> tuple[float, float, float, float]:
        """``(user spread, user's items' mean bias, item's raters' mean bias, b_i x spread)``.

        Features 5-8: the last is ``b_i`` times the user's relative spread (the spread over
        the all-user root mean square), so the item's offset counts more for wide raters.

        ``n_u`` and ``n_i``: events learned of ``user`` and of ``item``; all 0 for new ids.
        """
        g = self._spread_sum / self._spread_n if self._spread_n else 0.0
        prior = self.spread_prior
        _, squares, item_bias = self.user_state(user)
        spread = sqrt((squares + prior * g) / (n_u + prior)) - sqrt(g)
        b_i = self.biases.lookup(user, item)[1]
        return (spread, item_bias / (n_u + 1), self.item_state(item)[1] / (n_i + 1),
                b_i * spread / sqrt(g) if g else 0.0)

    def _terms(self, serving: tuple[DeepView, UserVectors, int | None, np.ndarray] | None,
               user: str, item: str, context: Any = None) -> tuple[
                   int, float, float, tuple[float, ...], np.ndarray | None,
                   tuple[float, float]]:
        """``(segment, p_bias, p_deep, features, q_i, (b_u, b_i))`` before learning it."""
        b_u, b_i, n_u, n_i = self.biases.lookup(user, item)
        bounds = self.clip
        p_bias = self.biases.mu + b_u + b_i
        if bounds is not None:
            p_bias = min(max(p_bias, bounds[0]), bounds[1])
        p_online = self.online.predict_one(user, item, context)
        if bounds is not None:
            p_online = min(max(p_online, bounds[0]), bounds[1])
        p_deep, q_i = p_bias, None
        if serving is not None:
            # the view's own terms (mu + b_u + b_i) plus the folded-in interaction
            view, vecs = serving[0], serving[1]
            col, row = view.items.get(item), view.users.get(user)
            p_deep = view.mu
            if col is not None:
                p_deep += float(view.item_bias[col])
                q_i = view.item_vecs[col]
                if row is not None:
                    p_deep += float(view.user_vecs[row] @ q_i)
                vec = vecs._vecs.get(user)
                if vec is not None:
                    p_deep += float(vec @ q_i)
            if row is not None:
                p_deep += float(view.user_bias[row])
            if bounds is not None:
                p_deep = min(max(p_deep, bounds[0]), bounds[1])
        features = (p_online - p_bias, p_deep - p_bias, self.user_state(user)[0],
                    self.item_state(item)[0], *self.implicit(user, item, n_u, n_i))
        return self.weights.segment(n_u, n_i), p_bias, p_deep, features, q_i, (b_u, b_i)

    def predict_one(self, user: str, item: str) -> float:
        """The blended prediction."""
        segment, p_bias, _, features, _, _ = self._terms(self._serving, user, item)
        return clip(p_bias + self.weights.predict(segment, features), self.clip)

    def step(self, user: str, item: str, value: float,
             context: Any = None) -> tuple[float, float, float | None]:
        """Predict, then learn ``(user, item, value)``: ``(blend, online, deep side)``.

        The deep side is the deep model with fold-in, or the biases alone without one.
        """
        # :meth:`_terms`, the blend and the learning, inlined (the per-event path; tested
        # equal to predict_one before each step)
        serving = self._serving
        biases, bounds = self.biases, self.clip
        dirty = self._dirty_users
        if dirty is not None:  # the rows the next version (a delta) carries
            dirty.add(user)
            self._dirty_items.add(item)  # type: ignore[union-attr]
        # BiasModel.lookup_rows, inlined
        u, i = biases._users.get(user), biases._items.get(item)
        if u is None:
            b_u, n_u = 0.0, 0
            f3 = squares = item_bias = 0.0
        else:
            c = biases._nu[u]
            b_u, n_u = biases._su[u] / (c + biases.user_prior), int(c)
            f3, squares, item_bias = (self._user_recent[u], self._user_squares[u],
                                      self._user_item_bias[u])
        if i is None:
            b_i, n_i = 0.0, 0
            f4 = s_i = 0.0
        else:
            c = biases._ni[i]
            b_i, n_i = biases._si[i] / (c + biases.item_prior), int(c)
            f4, s_i = self._item_recent[i], self._item_rater_bias[i]
        mu = biases.mu
        p_bias = mu + b_u + b_i
        # Recommender.predict_one / learn_one, inlined for River's own ids (no features)
        online = self.online
        river = online._model
        pure = None if online._features else PURE_PREDICT.get(type(river))
        p_online = (pure(river, user, item) if pure is not None
                    else online.predict_one(user, item, context))
        if bounds is not None:
            lo, hi = bounds
            p_bias = lo if p_bias < lo else hi if p_bias > hi else p_bias
            p_online = lo if p_online < lo else hi if p_online > hi else p_online
        p_deep = p_bias
        if serving is not None:  # prediction and fold-in (one compiled call with numba)
            view = serving[0]
            col = view.items.get(item)
            if col is None or deep_kernel is None:
                p_deep = deep_side(view, serving[1], user, item, value,
                                   *(bounds if bounds is not None else _UNBOUNDED), serving[3])
            else:  # deep_side, inlined (the common case: a known item)
                row, vecs = view.users.get(user), serving[1]
                lr, table = vecs.lr, vecs._vecs
                vec = table.pop(user, None) if lr else table.get(user)
                if vec is None:
                    vec = np.zeros(view.dim)
                p_deep = deep_kernel(view.user_pack, view.item_pack, serving[3],
                                     -1 if row is None else row, col, vec, value)
                if lr:
                    table[user] = vec
                    if len(table) > vecs.max_users:
                        del table[next(iter(table))]
        blend = self.weights
        segments = blend.segments
        bits = n_u.bit_length()
        item_bucket = (n_i.bit_length() + 1) >> 1
        segment = (bits if bits < segments else segments - 1) * 4 + (
            item_bucket if item_bucket < 3 else 3)
        f1, f2 = p_online - p_bias, p_deep - p_bias
        n = self._spread_n
        g = self._spread_sum / n if n else 0.0
        prior = self.spread_prior
        root = sqrt(g)
        f5 = sqrt((squares + prior * g) / (n_u + prior)) - root
        f6, f7 = item_bias / (n_u + 1), s_i / (n_i + 1)
        f8 = b_i * f5 / root if g else 0.0
        w = blend._coef[segment]
        y_hat = p_bias + w[0] + w[1] * f1 + w[2] * f2 + w[3] * f3 + w[4] * f4 + w[5] * f5 + (
            w[6] * f6 + w[7] * f7 + w[8] * f8)
        if bounds is not None:
            y_hat = lo if y_hat < lo else hi if y_hat > hi else y_hat
        residual = value - p_bias
        pending = blend._pending  # StackedBlend.push, inlined
        pending.extend((segment, f1, f2, f3, f4, f5, f6, f7, f8, residual))
        blend._seen += 1
        if len(pending) >= blend._due:
            blend.refit()
        if pure is not None:
            river.learn_one(user, item, value)
        else:
            online.learn_one(user, item, value, context)
        # BiasModel.update_rows, inlined (new ids get their rows here, zeros everywhere)
        if u is None:
            u = biases.user_index(user)
            for values in (self._user_recent, self._user_squares, self._user_item_bias):
                values.extend([0.0] * (u + 1 - len(values)))
        if i is None:
            i = biases.item_index(item)
            for values in (self._item_recent, self._item_rater_bias):
                values.extend([0.0] * (i + 1 - len(values)))
        a = self.user_recency
        self._user_recent[u] = f3 * (1.0 - a) + a * residual
        a = self.item_recency
        self._item_recent[i] = f4 * (1.0 - a) + a * residual
        square = residual * residual
        self._user_squares[u] = squares + square
        self._user_item_bias[u] = item_bias + b_i
        self._item_rater_bias[i] = s_i + b_u
        self._spread_sum += square
        self._spread_n = n + 1
        biases._nu[u] += 1.0
        biases._su[u] += value - mu - b_i
        biases._ni[i] += 1.0
        biases._si[i] += value - mu - b_u
        biases._count += 1
        biases._total += value
        if not biases.refits:
            biases.mu = biases._total / biases._count
        self.last_rows = (u, i)
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
