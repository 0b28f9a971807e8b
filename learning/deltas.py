"""Row deltas of the online learner: what changed since the last version, as data (no pickle).

A version of a River matrix factorisation (``BiasedMF``, ``FunkMF``) is a base snapshot plus
deltas (docs/publishing.md). :class:`~learning.online.OnlineLearner` records every user and
item id it passed to the model since the last publish (``predict_one`` counts: River inserts
a row for an unknown id); :func:`take_delta` reads those rows plus the small state that
changes with every event (the global mean, the optimizers' iteration counters, the latent
initializer's RNG and the model's own RNG, the prequential accumulators and window,
``events_seen``, the newest event time) into a :class:`LearnerDelta`; :func:`apply_delta`
writes it into a copy of the previous state in place. ``base + deltas`` then *is* the
learner: continuing it gives the same predictions, bit for bit, as the uninterrupted run.

>>> from learning.online import OnlineLearner
>>> from stream.schema import Event
>>> learner = OnlineLearner("BiasedMF", seed=3)
>>> _ = learner.learn_one(Event("e0", "u1", "i1", "rating", 4.0, 0.0))
>>> replica = OnlineLearner.restore(learner.snapshot())       # the base
>>> learner.clear_dirty()
>>> _ = learner.learn_one(Event("e1", "u2", "i1", "rating", 2.0, 1.0))
>>> delta = take_delta(learner)
>>> sorted(delta.tables["u_latents"].keys), delta.events_seen
(['u2'], 2)
>>> apply_delta(replica, decode(encode(delta)))
>>> replica.predict_one("u2", "i1") == learner.predict_one("u2", "i1")
True
"""

from __future__ import annotations

import math
import operator
import weakref
from collections import deque
from itertools import compress, repeat
from typing import Any

import msgspec
import numpy as np

from learning import blend_delta
from learning.blend_delta import BlendDelta
from learning.item_side import ATTRIBUTE as _ITEM_SIDE
from learning.item_side import ItemDelta, ItemSide

__all__ = ["DELTA_MODELS", "BlendDelta", "ItemSideRows", "LearnerDelta", "Rows", "apply_delta",
           "changed_non_finite", "decode", "delta_capable", "encode", "take_delta"]

#: River models whose versions can be deltas; the others publish whole versions
DELTA_MODELS = ("BiasedMF", "FunkMF")
_TABLES = {"BiasedMF": ("u_biases", "i_biases", "u_latents", "i_latents"),
           "FunkMF": ("u_latents", "i_latents")}
_OPTIMIZERS = {"BiasedMF": ("u_bias_optimizer", "i_bias_optimizer", "u_latent_optimizer",
                            "i_latent_optimizer"),
               "FunkMF": ("u_optimizer", "i_optimizer")}
_INITIALIZERS = {"BiasedMF": ("latent_initializer", "weight_initializer"),
                 "FunkMF": ("initializer",)}
# optimizers and schedules whose whole state is ``n_iterations`` (SGD; its rates are
# functions of the iteration); initializers whose state is at most a numpy RandomState
_STATELESS_SCHEDULES = {"Constant", "InverseScaling", "Optimal"}
_INITIALIZER_KINDS = {"Normal", "Zeros", "Constant"}
_EVENT_TIME = "event_time"  # monitoring.freshness.ATTRIBUTE (learning/ imports no monitoring)


class Rows(msgspec.Struct, array_like=True):
    """Rows of one table: ``keys`` and their float64 ``values`` (``width`` each; 0: scalars)."""

    keys: list[str]
    values: bytes
    width: int
    removed: list[str]


class NumpyRng(msgspec.Struct, array_like=True):
    """``numpy.random.RandomState.get_state()`` as data."""

    keys: bytes
    pos: int
    has_gauss: int
    cached_gaussian: float


class ItemSideRows(msgspec.Struct, array_like=True):
    """A shard's item-exchange state (:class:`learning.item_side.ItemSide`) in a delta.

    The counters, the pending delta and the peers merged are whole (small); the reference
    rows are those of the items touched since the last version: a take and a merge only
    change the reference of items they mark dirty, so base + deltas is the exchange state
    a whole checkpoint would hold.
    """

    factors: bool
    sent: int
    pending: ItemDelta | None
    seen: dict[int, int]
    mean: tuple[float, float]
    biases: Rows
    latents: Rows


class LearnerDelta(msgspec.Struct, kw_only=True):
    """What changed in an ``OnlineLearner`` since its last version (see the module doc)."""

    model: str
    tables: dict[str, Rows]
    optimizers: dict[str, int]
    numpy_rngs: dict[str, NumpyRng]
    python_rng: list[int] | None
    python_gauss: float | None
    global_mean: tuple[float, float] | None
    preq: tuple[int, float, float]
    recent: list[float]
    events_seen: int
    newest_event_ts: float | None = None
    item_side: ItemSideRows | None = None  # a sharded learner exchanging its item side
    blend: BlendDelta | None = None  # the rest of a lifelong blend (learning.blend_delta)


def _river(learner: Any) -> Any:
    return learner.model._model


def _blend(obj: Any) -> Any:
    """The lifelong model of a blend learner (or the model itself); None for anything else."""
    name = type(obj).__name__
    if name == "LifelongLearner":
        obj = getattr(obj, "model", None)
        name = type(obj).__name__
    return obj if name == "LifelongModel" else None


def delta_capable(learner: Any) -> bool:
    """Whether ``learner``'s versions can be deltas; anything else publishes whole versions.

    An ``OnlineLearner`` over BiasedMF or FunkMF with SGD optimizers, stateless learning
    rate schedules and Normal/Zeros/Constant initializers qualifies.

    >>> from learning.online import OnlineLearner
    >>> delta_capable(OnlineLearner("BiasedMF")), delta_capable(OnlineLearner("Baseline"))
    (True, False)
    """
    from learning.online import OnlineLearner

    blend = _blend(learner)
    if blend is not None:
        return blend_delta.capable(blend)
    if type(learner) is not OnlineLearner or learner.model_name not in DELTA_MODELS:
        return False
    river = _river(learner)
    for name in _OPTIMIZERS[learner.model_name]:
        opt = getattr(river, name, None)
        if type(opt).__name__ != "SGD" or type(opt.lr).__name__ not in _STATELESS_SCHEDULES:
            return False
    return all(type(getattr(river, name, None)).__name__ in _INITIALIZER_KINDS
               for name in _INITIALIZERS[learner.model_name])


def _rows(table: Any, dirty: set[str], vector: bool) -> Rows:
    # one lookup a row, the loops in C (a third of the time of a lookup per test and per
    # read plus a stack of arrays: 2,500 rows a version at 5k events/s)
    keys = list(dirty)
    values = list(map(table.get, keys))  # .get: a defaultdict creates no row
    keep = list(map(operator.is_not, values, repeat(None)))
    present = list(compress(keys, keep))
    removed = [k for k, v in zip(keys, values, strict=True) if v is None]
    if not present:
        return Rows([], b"", 0, removed)
    matrix = np.array(list(compress(values, keep)), dtype=np.float64)
    return Rows(present, matrix.tobytes(), int(matrix.shape[1]) if vector else 0, removed)


# the rows changed_non_finite read for a publish, kept for that publish's take_delta (one
# read of the changed rows a version instead of two); weak: a learner's copy dies with it
_TAKEN: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], Any]] = (
    weakref.WeakKeyDictionary())


def _gather(learner: Any, river: Any, users: set[str], items: set[str]) -> dict[str, Rows]:
    return {t: _rows(getattr(river, t), users if t.startswith("u_") else items,
                     t.endswith("latents")) for t in _TABLES[learner.model_name]}


def _stamp(learner: Any, river: Any, users: set[str], items: set[str]) -> tuple[int, ...]:
    """What changes whenever a row can: events learned, rows touched, rows present."""
    return (learner.events_seen, len(users), len(items),
            *(len(getattr(river, t)) for t in _TABLES[learner.model_name]))


def _blend_stamp(model: Any) -> tuple[int, ...]:
    users, items = model.dirty_rows()
    return (model.events_seen, id(model._serving), len(users), len(items), model.biases.refits,
            id(model._sent_view))


def take_delta(learner: Any, rows: tuple[set[str], set[str]] | None = None) -> LearnerDelta:
    """The rows touched since the last ``clear_dirty`` and the small per-event state.

    ``rows``: the (user, item) ids to take instead (a delta over an older state: the rows
    touched since then). The learner is not changed.
    """
    blend = _blend(learner)
    if blend is not None:
        taken = _TAKEN.pop(learner, None) if rows is None else None
        if taken is not None and taken[0] == _blend_stamp(blend):
            return taken[1]  # what changed_non_finite just took and checked
        return blend_delta.take(blend, rows)
    river = _river(learner)
    name = learner.model_name
    users, items = learner.dirty_rows() if rows is None else rows
    taken = _TAKEN.pop(learner, None) if rows is None else None
    if taken is not None and taken[0] == _stamp(learner, river, users, items):
        tables = taken[1]  # what changed_non_finite just read, nothing learned since
    else:
        tables = _gather(learner, river, users, items)
    rngs = {}
    for init in _INITIALIZERS[name]:
        rng = getattr(getattr(river, init), "_rng", None)
        if isinstance(rng, np.random.RandomState):
            _, keys, pos, has_gauss, cached = rng.get_state()
            rngs[init] = NumpyRng(keys.astype(np.uint32).tobytes(), int(pos), int(has_gauss),
                                  float(cached))
    py = getattr(river, "_rng", None)
    py_state = py.getstate() if py is not None else None
    mean = getattr(river, "global_mean", None)
    preq = learner._preq
    stamp = getattr(learner, _EVENT_TIME, None)
    newest = getattr(stamp, "newest", None)
    return LearnerDelta(
        model=name, tables=tables,
        optimizers={o: int(getattr(river, o).n_iterations) for o in _OPTIMIZERS[name]},
        numpy_rngs=rngs,
        python_rng=list(py_state[1]) if py_state is not None else None,
        python_gauss=py_state[2] if py_state is not None else None,
        global_mean=(float(mean.n), float(mean._mean)) if mean is not None else None,
        preq=(preq._n, preq._sq, preq._abs), recent=list(preq._recent),
        events_seen=learner.events_seen,
        newest_event_ts=float(newest) if isinstance(newest, float) else None,
        item_side=_side_rows(learner, items))


def _reference(table: dict[str, Any], items: set[str], vector: bool) -> Rows:
    keys = [k for k in items if k in table]  # a reference row is never removed
    if not keys:
        return Rows([], b"", 0, [])
    matrix = np.array([table[k] for k in keys], dtype=np.float64)
    return Rows(keys, matrix.tobytes(), int(matrix.shape[1]) if vector else 0, [])


def _side_rows(learner: Any, items: set[str]) -> ItemSideRows | None:
    side = learner.__dict__.get(_ITEM_SIDE)
    if side is None:
        return None
    return ItemSideRows(side.factors, side.sent, side.pending, dict(side.seen),
                        side._mean, _reference(side._biases, items, False),
                        _reference(side._latents, items, True))


def _apply_side(learner: Any, rows: ItemSideRows) -> None:
    side = ItemSide.of(learner, rows.factors)
    side.factors, side.sent, side.pending = rows.factors, rows.sent, rows.pending
    side.seen, side._mean = dict(rows.seen), (rows.mean[0], rows.mean[1])
    if rows.biases.keys:
        values = np.frombuffer(rows.biases.values, dtype=np.float64).tolist()
        side._biases.update(zip(rows.biases.keys, values, strict=True))
    if rows.latents.keys:
        matrix = np.frombuffer(rows.latents.values, dtype=np.float64).reshape(
            len(rows.latents.keys), rows.latents.width).copy()
        side._latents.update(zip(rows.latents.keys, matrix, strict=True))


def apply_delta(learner: Any, delta: LearnerDelta) -> None:
    """Write ``delta`` into ``learner`` (the state of the delta's parent) in place."""
    if delta.blend is not None:
        blend = _blend(learner)
        if blend is None:
            raise ValueError(f"a lifelong delta cannot apply to a {type(learner).__name__}")
        blend_delta.apply(blend, delta)
        return
    if learner.model_name != delta.model:
        raise ValueError(f"a {delta.model} delta cannot apply to a {learner.model_name} learner")
    river = _river(learner)
    for name, rows in delta.tables.items():
        table = getattr(river, name)
        for key in rows.removed:
            table.pop(key, None)
        if not rows.keys:
            continue
        values = np.frombuffer(rows.values, dtype=np.float64)
        if rows.width:
            matrix = values.reshape(len(rows.keys), rows.width).copy()  # writable rows
            table.update(zip(rows.keys, matrix, strict=True))
        else:
            table.update(zip(rows.keys, values.tolist(), strict=True))
    for name, count in delta.optimizers.items():
        getattr(river, name).n_iterations = count
    for name, state in delta.numpy_rngs.items():
        keys = np.frombuffer(state.keys, dtype=np.uint32).copy()
        getattr(river, name)._rng.set_state(("MT19937", keys, state.pos, state.has_gauss,
                                             state.cached_gaussian))
    if delta.python_rng is not None:
        river._rng.setstate((3, tuple(delta.python_rng), delta.python_gauss))
    if delta.global_mean is not None:
        river.global_mean.n, river.global_mean._mean = delta.global_mean
    preq = learner._preq
    preq._n, preq._sq, preq._abs = delta.preq
    preq._recent = deque(delta.recent, maxlen=preq.window)
    learner.events_seen = delta.events_seen
    stamp = getattr(learner, _EVENT_TIME, None)
    if delta.newest_event_ts is not None and stamp is not None:
        stamp.newest = delta.newest_event_ts
    if delta.item_side is not None:
        _apply_side(learner, delta.item_side)


def changed_non_finite(learner: Any) -> str | None:
    """The first non-finite value among the rows touched since the last publish, or ``None``.

    Rows only change when they are touched, so checking those (and the global mean) each
    publish keeps the whole model finite, as the full walk would, in O(changed rows).

    >>> from learning.online import OnlineLearner
    >>> from stream.schema import Event
    >>> learner = OnlineLearner("BiasedMF")
    >>> _ = learner.learn_one(Event("e1", "u1", "i1", "rating", 4.0, 0.0))
    >>> changed_non_finite(learner) is None
    True
    >>> learner.model._model.u_latents["u1"][0] = float("nan")
    >>> changed_non_finite(learner)
    "parameter model.u_latents['u1'] is not finite"
    """
    blend = _blend(learner)
    if blend is not None:  # the delta, taken once: checked here, published by take_delta
        delta = blend_delta.take(blend)
        where = blend_delta.non_finite(delta)
        if where is not None:
            _TAKEN.pop(learner, None)
            return f"parameter model.{where} is not finite"
        _TAKEN[learner] = (_blend_stamp(blend), delta)
        return None
    river = _river(learner)
    mean = getattr(river, "global_mean", None)
    if mean is not None and not math.isfinite(mean.get()):
        return "parameter model.global_mean is not finite"
    users, items = learner.dirty_rows()
    try:  # the rows as a delta takes them (kept for it): one vectorised test a table
        tables = _gather(learner, river, users, items)
    except (TypeError, ValueError):  # rows that are not float vectors of one width
        tables = None
    if tables is not None and all(np.isfinite(np.frombuffer(r.values)).all()
                                  for r in tables.values()):
        _TAKEN[learner] = (_stamp(learner, river, users, items), tables)
        return None
    _TAKEN.pop(learner, None)
    for name in _TABLES[learner.model_name]:  # the loop names the first
        table = getattr(river, name)
        for key in users if name.startswith("u_") else items:
            value = table.get(key)
            if value is not None and not np.isfinite(value).all():
                return f"parameter model.{name}[{key!r}] is not finite"
    return None


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(LearnerDelta)


def encode(delta: LearnerDelta) -> bytes:
    """``delta`` as msgpack bytes (data only)."""
    return _ENCODER.encode(delta)


def decode(data: bytes) -> LearnerDelta:
    """The :class:`LearnerDelta` in ``data`` (msgpack; refuses anything else)."""
    return _DECODER.decode(data)
