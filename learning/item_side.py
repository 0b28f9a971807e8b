"""A global item side for sharded learners: exchange the *updates* of item rows, not states.

A sharded learner (one River ``BiasedMF``/``FunkMF`` per partition, users split by
partition) sees only its own users' ratings of an item. One global SGD learner would have
applied *every* shard's updates to that item's row; so every shard periodically takes what
it changed in its item rows since the previous exchange (:meth:`ItemSide.take`, an
:class:`ItemDelta`) and adds the other shards' deltas into its own rows
(:meth:`ItemSide.merge`). After a full round every shard holds base + the sum of all
shards' updates: the same sum one global learner would have, only applied later (an
average of states would divide each shard's updates by the shard count).

What is exchanged: the item biases, the global mean (as ``(n, sum)`` increments) and,
if ``factors``, the item latent vectors. An item a shard has never seen is adopted from the
first delta that carries it (its vector as created there, plus updates), so the shards'
item vectors start equal and stay close; two shards creating the same item between two
exchanges add their two initial vectors, which the bench measures.

The state (the rows as of the last exchange, what was taken and not yet sent, the peers'
deltas already merged) lives in the learner's ``__dict__``, so it is pickled with every
whole version: the shard checkpoint *is* the exchange state. Only learning/ data here; the
store side is :mod:`consumers.item_exchange`.

>>> from learning.online import OnlineLearner
>>> from stream.schema import Event
>>> a, b = OnlineLearner(seed=1), OnlineLearner(seed=2)
>>> _ = a.learn_one(Event("e0", "u1", "i1", "rating", 5.0, 0.0))
>>> _ = b.learn_one(Event("e1", "u2", "i1", "rating", 1.0, 1.0))
>>> da, db = ItemSide.of(a).take(a), ItemSide.of(b).take(b)
>>> ItemSide.of(a).merge(a, 1, 1, db); ItemSide.of(b).merge(b, 0, 1, da)
True
True
>>> bias = lambda learner: learner.model._model.i_biases["i1"]
>>> bias(a) == bias(b) == da.biases["i1"] + db.biases["i1"]
True
>>> a.model._model.global_mean.get(), a.model._model.global_mean.n
(3.0, 2.0)
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

__all__ = ["ATTRIBUTE", "ItemDelta", "ItemSide", "decode", "encode"]

ATTRIBUTE = "_item_side"  # where the exchange state rides in the learner's __dict__


class ItemDelta(msgspec.Struct):
    """One shard's item-side updates between two exchanges (sums of SGD steps).

    ``latents`` maps an item to its vector's update (its whole vector if the item is new
    to the shard since the previous exchange); ``mean`` is the global mean's ``(n, sum)``
    increment.
    """

    biases: dict[str, float] = {}
    latents: dict[str, list[float]] = {}
    mean: tuple[float, float] = (0.0, 0.0)

    def __bool__(self) -> bool:
        return bool(self.biases or self.latents or self.mean[0])

    def add(self, other: ItemDelta) -> ItemDelta:
        """The sum of two deltas (``other`` taken after ``self``).

        >>> ItemDelta({"i": 1.0}, {}, (1.0, 4.0)).add(ItemDelta({"i": 0.5}, {}, (2.0, 3.0)))
        ItemDelta(biases={'i': 1.5}, latents={}, mean=(3.0, 7.0))
        """
        biases = dict(self.biases)
        for item, d in other.biases.items():
            biases[item] = biases.get(item, 0.0) + d
        latents = dict(self.latents)
        for item, vec in other.latents.items():
            latents[item] = ([x + y for x, y in zip(latents[item], vec, strict=True)]
                             if item in latents else list(vec))
        return ItemDelta(biases, latents, (self.mean[0] + other.mean[0],
                                           self.mean[1] + other.mean[1]))


    def scaled(self, factor: float) -> ItemDelta:
        """Every increment times ``factor`` (``-1``: the delta that undoes this one).

        >>> ItemDelta({"i": 1.0}, {"i": [2.0]}, (1.0, 4.0)).scaled(-1)
        ItemDelta(biases={'i': -1.0}, latents={'i': [-2.0]}, mean=(-1.0, -4.0))
        """
        return ItemDelta({k: factor * v for k, v in self.biases.items()},
                         {k: [factor * x for x in v] for k, v in self.latents.items()},
                         (factor * self.mean[0], factor * self.mean[1]))


def encode(delta: ItemDelta) -> bytes:
    """``delta`` as msgpack (data, no pickle: peers read it)."""
    return msgspec.msgpack.encode(delta)


def decode(data: bytes) -> ItemDelta:
    """The :class:`ItemDelta` ``data`` holds.

    >>> decode(encode(ItemDelta({"i": 0.25}))).biases
    {'i': 0.25}
    """
    return msgspec.msgpack.decode(data, type=ItemDelta)


def _river(learner: Any) -> Any:
    river = learner.model._model
    if not hasattr(river, "i_latents"):
        raise TypeError(f"{type(river).__name__} has no item rows to exchange")
    return river


class ItemSide:
    """A shard's exchange state: rows as of the last exchange, unsent and merged deltas.

    ``sent``: how many of its own deltas were published; ``pending``: taken, not yet
    published (kept across a failed publish and in the checkpoint); ``seen[peer]``: how
    many of ``peer``'s deltas were merged.
    """

    def __init__(self, factors: bool = False):
        self.factors = factors
        self.sent = 0
        self.pending: ItemDelta | None = None
        self.seen: dict[int, int] = {}
        self._biases: dict[str, float] = {}
        self._latents: dict[str, np.ndarray] = {}
        self._mean = (0.0, 0.0)

    def __getstate__(self) -> dict[str, Any]:
        # the reference vectors as one 2-D array: pickling thousands of small arrays (every
        # shard checkpoint holds this) cost as much as pickling the whole River model
        state = dict(self.__dict__)
        keys = list(self._latents)
        state["_latents"] = (keys, np.array([self._latents[k] for k in keys], dtype=np.float64)
                             if keys else None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        latents = state.get("_latents")
        if isinstance(latents, tuple):  # packed by __getstate__ (older pickles: a dict)
            keys, rows = latents
            state = {**state, "_latents": {} if rows is None else dict(zip(keys, rows,
                                                                              strict=True))}
        self.__dict__.update(state)

    @classmethod
    def of(cls, learner: Any, factors: bool = False) -> ItemSide:
        """The learner's exchange state (created, with ``factors``, on first use)."""
        state = learner.__dict__.get(ATTRIBUTE)
        if state is None:
            state = learner.__dict__[ATTRIBUTE] = cls(factors)
        return state

    def take(self, learner: Any) -> ItemDelta:
        """What the learner changed in its item rows since the last take or merge.

        Only the learner's dirty items (:meth:`learning.online.OnlineLearner.dirty_rows`)
        are compared, so a take costs the items touched, not the catalogue; call it before
        every ``clear_dirty`` (:class:`consumers.item_exchange.ExchangingPublisher` does).

        The rows' current values become the new reference; the delta is added to
        :attr:`pending` (until :meth:`sent_ok`) and returned.
        """
        river = _river(learner)
        # the items passed to the model since the last publish (a superset of those since
        # the last take: a publisher takes first), else all of them
        dirty = getattr(learner, "_dirty_items", None)
        biases: dict[str, float] = {}
        if hasattr(river, "i_biases"):
            table = river.i_biases
            for item in (list(dirty) if isinstance(dirty, set) else list(table)):
                if item not in table:
                    continue
                value = table[item]
                d = value - self._biases.get(item, 0.0)
                if d != 0.0:
                    biases[item] = d
                    self._biases[item] = value
        latents: dict[str, list[float]] = {}
        if self.factors:
            vectors = river.i_latents
            items = [i for i in (dirty if isinstance(dirty, set) else vectors) if i in vectors]
            known = [i for i in items if i in self._latents]
            for item in items:  # new to this shard's reference: the whole vector
                if item not in self._latents:
                    latents[item] = vectors[item].tolist()
                    self._latents[item] = np.array(vectors[item], dtype=np.float64)
            if known:  # one array operation over the dirty rows, not one per row
                now = np.array([vectors[i] for i in known], dtype=np.float64)
                diff = now - np.array([self._latents[i] for i in known])
                for j in np.flatnonzero(diff.any(axis=1)).tolist():
                    latents[known[j]] = diff[j].tolist()
                    self._latents[known[j]] = now[j].copy()
        mean = (0.0, 0.0)
        gm = getattr(river, "global_mean", None)
        if gm is not None:
            n, total = float(gm.n), float(gm.n) * float(gm.get())
            mean = (n - self._mean[0], total - self._mean[1])
            self._mean = (n, total)
        delta = ItemDelta(biases, latents, mean)
        if delta:  # nothing changed: nothing to send
            self.pending = delta if self.pending is None else self.pending.add(delta)
        return delta

    def rebase(self, published: list[ItemDelta], latest: int) -> None:
        """Restored from a checkpoint: correct for ``published``, its deltas sent after it.

        ``published`` are the chain's deltas ``sent + 1 .. latest``. Own updates sent, all
        told, must be those of the checkpoint (the rest is re-learned), so the pending
        delta becomes ``pending - sum(published)``.

        >>> side = ItemSide(); side.pending = ItemDelta({"i": 1.0})
        >>> side.rebase([ItemDelta({"i": 1.5})], 1)
        >>> side.sent, side.pending.biases
        (1, {'i': -0.5})
        """
        correction = self.pending or ItemDelta()
        for delta in published:
            correction = correction.add(delta.scaled(-1))
        self.pending = correction if correction else None
        self.sent = latest

    def sent_ok(self) -> None:
        """The pending delta is published (as this shard's delta number ``sent + 1``)."""
        self.pending = None
        self.sent += 1

    def merge(self, learner: Any, peer: int, number: int, delta: ItemDelta) -> bool:
        """Add ``peer``'s delta ``number`` into the learner's item rows (once; in order).

        Returns False (nothing changed) unless ``number`` is the peer's next one.
        """
        if number != self.seen.get(peer, 0) + 1:
            return False
        river = _river(learner)
        dirty = getattr(learner, "_dirty_items", None)
        if hasattr(river, "i_biases"):
            for item, d in delta.biases.items():
                value = river.i_biases[item] + d
                river.i_biases[item] = value
                self._biases[item] = self._biases.get(item, 0.0) + d
                if dirty is not None:
                    dirty.add(item)
        if self.factors:
            for item, vec in delta.latents.items():
                dv = np.asarray(vec, dtype=np.float64)
                if item in river.i_latents:
                    river.i_latents[item] = river.i_latents[item] + dv
                    ref = self._latents.get(item)
                    self._latents[item] = dv.copy() if ref is None else ref + dv
                else:  # adopt the peer's vector: the shards' item vectors start equal
                    river.i_latents[item] = dv.copy()
                    self._latents[item] = dv.copy()
                if dirty is not None:
                    dirty.add(item)
        gm = getattr(river, "global_mean", None)
        dn, dsum = delta.mean
        if gm is not None and dn:
            n = float(gm.n) + dn
            total = float(gm.n) * float(gm.get()) + dsum
            gm.n, gm._mean = n, (total / n if n else 0.0)
            self._mean = (self._mean[0] + dn, self._mean[1] + dsum)
        self.seen[peer] = number
        return True
