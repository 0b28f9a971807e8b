"""Row deltas of the lifelong blend (``learn --blend-with``): what changed since the last version.

A :class:`~learning.serving.LifelongModel` version is a base (the whole model) plus deltas,
as for River alone (:mod:`learning.deltas`, docs/publishing.md). The model records the user
and item ids of every event it learned since the last publish; :func:`take` reads, for those
ids only, River's rows (a :class:`~learning.deltas.LearnerDelta`), the exact biases and the
per-user / per-item sums at the bias rows (every row after a bias refit), the fold-in vectors
of the users touched (in their recency order, so eviction goes on exactly as in the learner),
and the small state that changes per event (the stacked blend's weights, moments and pending
rows, the spread sums, counters). The frozen deep view is sent only in the first delta after
a new deep version arrived (by identity: the view the previous version holds is not re-sent).
:func:`apply` writes such a delta into a copy of the previous state, in place: ``base +
deltas`` then predicts bit for bit as the learner. An erasure forces a whole base.

>>> from learning.lifelong import LifelongLearner
>>> from learning.serving import LifelongModel
>>> from learning.torch_models import DeepRecommender
>>> learner = LifelongLearner(clip=(1.0, 5.0))
>>> learner.set_deep(DeepRecommender(n_factors=4, seed=1), version=1)
>>> replica = LifelongModel.__new__(LifelongModel)
>>> replica.__setstate__(learner.model.__getstate__())   # the base
>>> learner.clear_dirty()
>>> from stream.schema import Event
>>> _ = learner.learn_one(Event("e1", "u2", "i1", "rating", 2.0, 1.0))
>>> delta = take(learner.model)
>>> delta.blend.users, delta.blend.view is None
(['u2'], True)
>>> apply(replica, delta)
>>> replica.predict_one("u2", "i1") == learner.predict_one("u2", "i1")
True
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec
import numpy as np

__all__ = ["BlendDelta", "BlendWeightsState", "ViewData", "apply", "capable", "non_finite",
           "take"]


class ViewData(msgspec.Struct, array_like=True):
    """A :class:`~learning.blend.DeepView` as data (its id maps and its two packs)."""

    mu: float
    users: list[str]
    user_rows: list[int]
    items: list[str]
    item_rows: list[int]
    dim: int
    user_pack: bytes
    item_pack: bytes
    clip: tuple[float, float] | None


class BlendWeightsState(msgspec.Struct, array_like=True):
    """The learned state of a :class:`~learning.stacking.StackedBlend` (its config stays)."""

    coef: bytes  # (n_segments, n_features + 1) float64
    moments: bytes
    moments_shape: list[int]
    pending: bytes
    seen: int
    refits: int
    sets: bytes | None
    sets_shape: list[int]
    errors: bytes
    without_optional: bool
    due: int


class BlendDelta(msgspec.Struct, kw_only=True):
    """What changed in a lifelong model since its last version (see the module doc)."""

    users: list[str]  # ids touched, with their bias rows
    user_rows: list[int]
    user_written: list[int]  # the user rows written (all of them after a refit)
    user_values: bytes  # per row: n, sum, recent residual, squares, items' bias sum
    n_user_rows: int
    items: list[str]
    item_rows: list[int]
    item_written: list[int]
    item_values: bytes  # per row: n, sum, recent residual, raters' bias sum
    n_item_rows: int
    biases: tuple[float, float, int, int]  # mu, total, count, refits
    spread: tuple[float, int]
    last_rows: tuple[int, int]
    events_seen: int
    weights: BlendWeightsState
    deep_version: int | None
    view: ViewData | None  # the deep view, when the previous version holds another one
    vec_keys: list[str]  # fold-in vectors of the touched users, oldest first
    vec_values: bytes
    vec_removed: list[str]
    vec_len: int


class _Preq:  # what LearnerDelta carries of a learner's score: not part of the served model
    window = 1

    def __init__(self) -> None:
        self._n, self._sq, self._abs = 0, 0.0, 0.0
        self._recent: deque[float] = deque(maxlen=1)


class _River:
    """The River part of a lifelong model as :mod:`learning.deltas` reads an OnlineLearner."""

    def __init__(self, model: Any, rows: tuple[set[str], set[str]]):
        self.model = model.online
        self.model_name = model.online.name
        self.events_seen = model.events_seen
        self._preq = _Preq()
        self._rows = rows

    def dirty_rows(self) -> tuple[set[str], set[str]]:
        return self._rows


def capable(model: Any) -> bool:
    """Whether ``model`` (a LifelongModel) can publish deltas: a delta-capable River inside."""
    from learning import deltas as river_deltas

    online: Any = getattr(model, "online", None)
    name = getattr(online, "name", None)
    if name not in river_deltas.DELTA_MODELS or getattr(online, "_features", None):
        return False
    river = online._model
    for opt_name in river_deltas._OPTIMIZERS[name]:
        opt: Any = getattr(river, opt_name, None)
        if (type(opt).__name__ != "SGD"
                or type(opt.lr).__name__ not in river_deltas._STATELESS_SCHEDULES):
            return False
    return all(type(getattr(river, init, None)).__name__ in river_deltas._INITIALIZER_KINDS
               for init in river_deltas._INITIALIZERS[name])


def _view_data(view: Any) -> ViewData:
    return ViewData(float(view.mu), list(view.users), list(view.users.values()),
                    list(view.items), list(view.items.values()), int(view.dim),
                    np.ascontiguousarray(view.user_pack).tobytes(),
                    np.ascontiguousarray(view.item_pack).tobytes(),
                    tuple(view.clip) if view.clip is not None else None)


def _view_of(data: ViewData) -> Any:
    from learning.blend import DeepView

    width = data.dim + 1
    view = DeepView.__new__(DeepView)
    view.__setstate__({
        "mu": data.mu, "users": dict(zip(data.users, data.user_rows, strict=True)),
        "items": dict(zip(data.items, data.item_rows, strict=True)),
        "clip": data.clip, "dim": data.dim,
        "user_pack": np.frombuffer(data.user_pack).reshape(-1, width).copy(),
        "item_pack": np.frombuffer(data.item_pack).reshape(-1, width).copy()})
    return view


def _weights_state(w: Any) -> BlendWeightsState:
    sets = w._sets
    return BlendWeightsState(
        np.asarray(w._coef, dtype=np.float64).tobytes(), w._moments.tobytes(),
        list(w._moments.shape), w._pending.tobytes(), int(w._seen), int(w.refits),
        None if sets is None else sets.tobytes(), [] if sets is None else list(sets.shape),
        w._errors.tobytes(), bool(w.without_optional), int(w._due))


def _set_weights(w: Any, s: BlendWeightsState) -> None:
    from array import array

    width = w.n_features + 1
    w._coef = np.frombuffer(s.coef).reshape(-1, width).tolist()
    w._moments = np.frombuffer(s.moments).reshape(s.moments_shape).copy()
    w._pending = array("d", s.pending)
    w._seen, w.refits, w.without_optional, w._due = s.seen, s.refits, s.without_optional, s.due
    w._sets = None if s.sets is None else np.frombuffer(s.sets).reshape(s.sets_shape).copy()
    w._errors = np.frombuffer(s.errors).copy()


def _columns(lists: tuple[list[float], ...], rows: list[int]) -> bytes:
    """Rows ``rows`` of the parallel ``lists`` as a (rows, len(lists)) float64 matrix."""
    if not rows:
        return b""
    return np.array([[values[r] for r in rows] for values in lists],
                    dtype=np.float64).T.tobytes()


def take(model: Any, rows: tuple[set[str], set[str]] | None = None) -> Any:
    """The :class:`~learning.deltas.LearnerDelta` of ``model`` since its last ``clear_dirty``.

    Its River part is the usual LearnerDelta, its ``blend`` the rest. ``rows``: the (user,
    item) ids to take instead (a delta over an older state, e.g. a base a child wrote: the
    deep view, every bias row and the whole fold-in table are then sent, as the view may
    have changed since). The model is not changed.
    """
    from learning import deltas as river_deltas

    users, items = model.dirty_rows() if rows is None else rows
    serving = model._serving  # read once: set_deep may swap it from another thread
    online = river_deltas.take_delta(_River(model, (users, items)))
    b = model.biases
    user_map, item_map = b._users, b._items
    u_keys = [u for u in users if u in user_map]
    u_rows = [user_map[u] for u in u_keys]
    i_keys = [i for i in items if i in item_map]
    i_rows = [item_map[i] for i in i_keys]
    refit = b.refits != model._refits_sent or rows is not None
    u_written = list(range(len(b._nu))) if refit else u_rows
    i_written = list(range(len(b._ni))) if refit else i_rows
    u_values = _columns((b._nu, b._su, model._user_recent, model._user_squares,
                         model._user_item_bias), u_written)
    i_values = _columns((b._ni, b._si, model._item_recent, model._item_rater_bias), i_written)
    view, vecs, version = (serving[0], serving[1], serving[2]) if serving else (None, None, None)
    keys: list[str] = []
    removed: list[str] = []
    values = b""
    if vecs is not None:
        table = vecs._vecs
        if rows is not None:  # over an older state: the view and the whole table go
            keys = list(table)
        else:
            for user in reversed(table):  # the touched users are the newest: a suffix
                if user not in users:
                    break
                keys.append(user)
            keys.reverse()
            removed = [u for u in users if u not in table]
        if keys:
            values = np.array([table[u] for u in keys], dtype=np.float64).tobytes()
    resend = view is not None and (rows is not None or view is not model._sent_view)
    model._pending_view = view
    online.blend = BlendDelta(
        users=u_keys, user_rows=u_rows, user_written=u_written,
        user_values=u_values, n_user_rows=len(b._nu),
        items=i_keys, item_rows=i_rows, item_written=i_written,
        item_values=i_values, n_item_rows=len(b._ni),
        biases=(float(b.mu), float(b._total), int(b._count), int(b.refits)),
        spread=(float(model._spread_sum), int(model._spread_n)),
        last_rows=(int(model.last_rows[0]), int(model.last_rows[1])),
        events_seen=int(model.events_seen), weights=_weights_state(model.weights),
        deep_version=version, view=_view_data(view) if resend else None,
        vec_keys=keys, vec_values=values, vec_removed=removed,
        vec_len=len(vecs._vecs) if vecs is not None else 0)
    return online


def non_finite(delta: Any) -> str | None:
    """The first part of ``delta`` (from :func:`take`) holding a NaN or infinity, or None."""
    blend = delta.blend
    for name, rows in delta.tables.items():
        if not np.isfinite(np.frombuffer(rows.values)).all():
            return f"online.{name}"
    if delta.global_mean is not None and not np.isfinite(delta.global_mean).all():
        return "online.global_mean"
    w = blend.weights
    parts = {"biases": np.frombuffer(blend.user_values + blend.item_values),
             "biases.mu": np.asarray(blend.biases[:2]), "spread": blend.spread[0],
             "weights": np.frombuffer(w.coef + w.moments + w.pending + w.errors
                                      + (w.sets or b"")),
             "fold": np.frombuffer(blend.vec_values)}
    if blend.view is not None:
        v = blend.view
        parts["_serving.view"] = np.frombuffer(v.user_pack + v.item_pack + np.float64(
            v.mu).tobytes())
    for name, values in parts.items():
        if not np.isfinite(values).all():
            return name
    return None


def apply(model: Any, delta: Any) -> None:
    """Write ``delta`` (from :func:`take`) into ``model`` (its parent's state) in place."""
    from learning import deltas as river_deltas
    from learning.foldin import UserVectors

    blend: BlendDelta = delta.blend
    river_deltas.apply_delta(_River(model, (set(), set())),
                             msgspec.structs.replace(delta, blend=None))
    b = model.biases
    b._users.update(zip(blend.users, blend.user_rows, strict=True))
    b._items.update(zip(blend.items, blend.item_rows, strict=True))
    for lists, n, written, raw, width in (
            ((b._nu, b._su, model._user_recent, model._user_squares, model._user_item_bias),
             blend.n_user_rows, blend.user_written, blend.user_values, 5),
            ((b._ni, b._si, model._item_recent, model._item_rater_bias),
             blend.n_item_rows, blend.item_written, blend.item_values, 4)):
        for values in lists:
            values.extend([0.0] * (n - len(values)))
        if written:
            matrix = np.frombuffer(raw).reshape(len(written), width).T.tolist()
            for values, column in zip(lists, matrix, strict=True):
                for row, x in zip(written, column, strict=True):
                    values[row] = x
    b.mu, b._total, b._count, b.refits = blend.biases
    model._spread_sum, model._spread_n = blend.spread
    model.last_rows = blend.last_rows
    model.events_seen = blend.events_seen
    _set_weights(model.weights, blend.weights)
    serving = model._serving
    if blend.view is not None:
        view = _view_of(blend.view)
        vecs = UserVectors(model.fold_lr, model.fold_l2)
        serving = (view, vecs, blend.deep_version, model._kernel_params(view, vecs, model.clip))
    elif serving is not None and serving[2] != blend.deep_version:
        raise ValueError(f"a delta over deep version {blend.deep_version} cannot apply to a "
                         f"model serving deep version {serving[2]}")
    if serving is not None:
        table = serving[1]._vecs
        for user in blend.vec_removed:
            table.pop(user, None)
        if blend.vec_keys:
            vectors = np.frombuffer(blend.vec_values).reshape(len(blend.vec_keys), -1).copy()
            for user, vec in zip(blend.vec_keys, vectors, strict=True):
                table.pop(user, None)
                table[user] = vec
        while len(table) > blend.vec_len:
            del table[next(iter(table))]
    model._serving = serving
    model._sent_view = model._pending_view = serving[0] if serving is not None else None
    model._refits_sent = b.refits
