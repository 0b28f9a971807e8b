"""The fine-tuner's published deep ranker inside the online ranking learner (issue 8).

``lifelong finetune --task ranking`` trains the deep ranker in rounds and publishes it
(format ``deep-ranking``); ``lifelong learn --task ranking --blend-with <deep model>``
follows that model's ``production`` alias (:func:`consumers.deep_follow.follow_deep`) and
mixes it into its online ranker: :class:`FollowedDeep` is the deep part of that mix
(a :class:`~learning.rank_deep_online.DeepMix` over the online ranker). Between versions it
ranks with the frozen published model and **folds every event into the user's side**, as the
in-process :class:`~learning.rank_deep_online.DeepRankPart` does, so a user's burst moves
their list before the fine-tuner's next round and a user the model never saw gets a
personal list from their first events. Until the first version arrives it scores nothing
(all zeros: the mix is then the online ranker alone).

A new version is *offered* from the subscriber's thread (:meth:`FollowedDeep.offer`) and
adopted on the learner's own thread at its next event or score, so one call never mixes two
versions. The online rows are mapped to the model's rows by item id (the learner's id list,
shared by reference). A checkpoint holds the adopted model as its ``deep-ranking`` bytes
(safetensors, no pickle), so a subscriber of the online model serves the same mix; erasing a
user (:meth:`FollowedDeep.forget_user`) also frees their row in that copy.

>>> from learning.rank_deep import DeepRanker
>>> deep = DeepRanker(n_factors=4, seed=0)
>>> users, items = deep.users.lookup(["u"], 0.0), deep.items.lookup(["a", "b"], 0.0)
>>> ids = ["b", "a", "c"]                 # the online learner's rows: c is unknown to the model
>>> part = FollowedDeep(ids)
>>> part.n_items = 3
>>> part.score_items("u").tolist(), part.version
([0.0, 0.0, 0.0], None)
>>> part.offer(deep, version=7)
>>> part.version, bool(part.score_items("u")[2] < part.score_items("u")[:2].min())
(7, True)
>>> part._deep_row.tolist()
[1, 0, -1]
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from learning.rank_deep_online import FoldedDeep

__all__ = ["FollowedDeep"]

log = logging.getLogger(__name__)


class FollowedDeep(FoldedDeep):
    """The published deep ranker, frozen between versions, plus the per-event fold-in.

    ``item_ids`` is the online learner's item id list (row order, append-only; shared).
    """

    def __init__(self, item_ids: list[str], *, fold_rate: float = 0.6, fold_weight: float = 3.0):
        if not 0.0 <= fold_rate <= 1.0 or fold_weight < 0:
            raise ValueError("need fold_rate in [0, 1] and fold_weight >= 0")
        self.fold_rate = fold_rate
        self.fold_weight = fold_weight
        self.n_items = 0
        self._ids = item_ids
        self._model: Any = None  # the adopted DeepRanker
        self._version: int | None = None
        self._incoming: tuple[Any, int | None] | None = None
        self._blob: bytes | None = None  # the adopted model's deep-ranking bytes, cached
        self._deep_row = np.zeros(0, dtype=np.int64)
        self._reps = np.zeros((0, 0), dtype=np.float32)
        self._bias = np.zeros(0, dtype=np.float32)
        self._users: dict[str, np.ndarray] = {}
        self._fold: dict[str, np.ndarray] = {}

    # following -----------------------------------------------------------------------
    def offer(self, model: Any, version: int | None = None) -> None:
        """Hand over a new published model (any thread); it is adopted at the next call."""
        self._incoming = (model, version)

    @property
    def version(self) -> int | None:
        """The version in use (or offered and about to be)."""
        incoming = self._incoming
        return incoming[1] if incoming is not None else self._version

    def _adopt(self) -> None:
        incoming, self._incoming = self._incoming, None
        if incoming is None:
            return
        model, version = incoming
        reps, bias = model.item_matrix()
        self._model, self._version, self._blob = model, version, None
        self._reps, self._bias = reps, bias
        self._deep_row = np.zeros(0, dtype=np.int64)
        self._users = {}
        self._map_rows()
        log.info("ranking with deep version %s (%d items, %d of ours known)", version,
                 len(bias), int(np.count_nonzero(self._deep_row >= 0)))

    def _map_rows(self) -> None:
        """Extend the online row -> model row map to every row the learner has now."""
        have = len(self._deep_row)
        if self._model is None or have >= self.n_items:
            return
        new = self._model.items.lookup(self._ids[have:self.n_items], now=0.0, add=False)
        self._deep_row = np.concatenate([self._deep_row, np.asarray(new, dtype=np.int64)])

    # the Ranker protocol ---------------------------------------------------------------
    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """Fold the event into ``user``'s vector (nothing to train: the fine-tuner does)."""
        self._adopt()
        if item >= self.n_items:
            self.n_items = item + 1
        self._map_rows()
        self._fold_event(user, item)

    def score_items(self, user: str) -> np.ndarray:
        """The published model plus the fold-in per online row; zeros before any version."""
        self._adopt()
        self._map_rows()
        return super().score_items(user)

    def item_vectors(self) -> np.ndarray:
        """The model's item representations per online row (zeros where unknown)."""
        self._adopt()
        self._map_rows()
        if not self._reps.shape[1]:
            return np.zeros((self.n_items, 0), dtype=np.float32)
        return super().item_vectors()

    def learn_negative(self, user: str, item: int, ts: float = 0.0) -> None:
        """An unclicked showing moves ``user``'s fold-in away from the item."""
        self._adopt()
        self._map_rows()
        super().learn_negative(user, item, ts)

    def _model_user(self, user: str) -> np.ndarray | None:
        if self._model is None:
            return None
        row = self._model.users.lookup([user], now=0.0, add=False)[0]
        return self._model.user_reprs(np.array([row]))[0] if row >= 0 else None

    def _vector_key(self) -> object:
        return (self._version, id(self._model), len(self._deep_row))

    # erasure and checkpoints -----------------------------------------------------------
    def forget_user(self, user: str) -> int:
        """Erase ``user``: their fold-in, cached vector and row in the adopted model."""
        from learning.erasure import forget_deep_user

        self._adopt()
        removed = int(self._fold.pop(user, None) is not None)
        self._users.pop(user, None)
        if self._model is not None and forget_deep_user(self._model, user):
            removed += 1
            self._blob = None
            self._model.invalidate()
        return removed

    def __getstate__(self) -> dict[str, Any]:
        """The adopted model as ``deep-ranking`` bytes (an offered one is left to the follow)."""
        from learning import rank_deep

        state = self.__dict__.copy()
        state.pop("_vectors", None)
        if self._model is not None and self._blob is None:
            self._blob = rank_deep.dump(self._model)
        state.update(_model=None, _incoming=None, _blob=self._blob, _reps=None, _bias=None,
                     _users={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from learning import rank_deep

        self.__dict__.update(state)
        self._reps = np.zeros((0, 0), dtype=np.float32)
        self._bias = np.zeros(0, dtype=np.float32)
        if self._blob is not None:
            model = rank_deep.load(self._blob)
            reps, bias = model.item_matrix()
            self._model, self._reps, self._bias = model, reps, bias
