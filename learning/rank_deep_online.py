"""The deep ranker as the system runs it: rounds every N events, per-event fold-in between.

:class:`DeepRankPart` is a :class:`~learning.rankers.Ranker` (so
:class:`~learning.ranking_learner.RankingLearner` scores it prequentially, in time order,
from scratch, and ``lifelong evaluate --task ranking --model deep`` runs it): every
``max(round_every, round_growth * events trained so far)`` events (rounds spaced with the
history) it trains one fine-tuner round (:class:`~learning.finetune.FineTuner`
with a ranking loss) on the events since the last round plus replay, exactly as the
fine-tune worker does; between rounds it ranks with the frozen model and **folds every event
into the user's side**: the user's query vector is ``user_repr(p_u) + fold_weight * m_u``,
where ``m_u`` is an exponential moving average (rate ``fold_rate``) of the representations of
the items the user touched since, so a burst moves their list before the next round and a
user the model never saw gets a personal list from their first events. Items the model does
not know yet rank below every known one.

:class:`DeepMix` adds the deep part to another ranker (the online blend): the two score
vectors, min-max scaled, are mixed ``base + w * deep`` with ``w`` picked per event from a
grid by each candidate's decayed NDCG@k on the events so far (prequential: credited before
the event is learned).

>>> from learning.ranking_learner import RankingLearner
>>> from stream.schema import Event
>>> learner = RankingLearner("deep", seed=0)
>>> learner.ranker.round_every, learner.ranker.round_growth = 50, 0.0
>>> for n in range(200):
...     _ = learner.learn_one(Event(f"e{n}", f"u{n % 7}", f"i{(n * 3) % 11}", "click", 1.0, n))
>>> learner.ranker.rounds, len(learner.score_items("u1")), learner.score().n > 0
(4, 11, True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from learning.rankers import Ranker

__all__ = ["DeepMix", "DeepRankPart", "FoldedDeep"]


def _scale(s: np.ndarray) -> np.ndarray:
    if not len(s):
        return s
    lo, hi = float(s.min()), float(s.max())
    return (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)


class FoldedDeep:
    """A frozen deep ranker's item matrix plus the per-event fold-in of the user side.

    The shared half of :class:`DeepRankPart` (the model from in-process rounds) and
    :class:`learning.rank_deep_follow.FollowedDeep` (the model the fine-tuner publishes).
    A subclass sets ``n_items``, ``fold_rate``, ``fold_weight``, the arrays ``_reps``,
    ``_bias`` (the model's item matrix) and ``_deep_row`` (online row -> model row, -1
    unknown) and the dicts ``_users`` (cache of the model's user vectors) and ``_fold``,
    and implements :meth:`_model_user`.
    """

    n_items: int
    fold_rate: float
    fold_weight: float
    _reps: np.ndarray
    _bias: np.ndarray
    _deep_row: np.ndarray
    _users: dict[str, np.ndarray]
    _fold: dict[str, np.ndarray]

    def _model_user(self, user: str) -> np.ndarray | None:
        """The frozen model's ``user_repr`` of ``user`` (None: it does not know them)."""
        raise NotImplementedError

    def _fold_event(self, user: str, item: int) -> None:
        row = self._deep_row[item] if item < len(self._deep_row) else -1
        if row >= 0 and self.fold_rate > 0:
            rep = self._reps[row]
            old = self._fold.get(user)
            self._fold[user] = rep * self.fold_rate if old is None else \
                old * (1.0 - self.fold_rate) + rep * self.fold_rate

    #: how far one unclicked showing moves the fold-in, relative to a positive's; 0 (off)
    #: by default: 0.25 lowered the CTR by ~15 % in the simulated feedback loop
    #: (bench/feedback.py, on a world apart from the reported ones)
    negative_share = 0.0

    def learn_negative(self, user: str, item: int, ts: float = 0.0) -> None:
        """Learn that ``user`` was shown online row ``item`` and did not take it.

        Their fold-in moves away from its representation (``m_u -= negative_share *
        fold_rate * q_i``; off by default).
        """
        row = self._deep_row[item] if 0 <= item < len(self._deep_row) else -1
        if row < 0 or self.fold_rate <= 0 or self.negative_share <= 0:
            return
        step = self._reps[row] * (self.fold_rate * self.negative_share)
        old = self._fold.get(user)
        self._fold[user] = -step if old is None else old - step

    def _query(self, user: str) -> np.ndarray | None:
        q = self._users.get(user)
        if q is None:
            q = self._model_user(user)
            if q is not None:
                self._users[user] = q
        fold = self._fold.get(user)
        if fold is not None:
            q = fold * self.fold_weight if q is None else q + fold * self.fold_weight
        return q

    def score_items(self, user: str) -> np.ndarray:
        """One score per online row: the frozen model plus the fold-in; unknown rows last."""
        n = self.n_items
        rows = self._deep_row[:n]
        if not len(self._bias):
            return np.zeros(n)
        q = self._query(user)
        deep = self._bias.astype(np.float64) if q is None else \
            (self._reps @ q + self._bias).astype(np.float64)
        out = np.full(n, float(deep.min()) - 1.0 if len(deep) else 0.0)
        known = np.flatnonzero(rows >= 0)
        out[known] = deep[rows[known]]
        return out

    def _vector_key(self) -> object:
        """What the cached :meth:`item_vectors` depends on besides ``n_items``."""
        raise NotImplementedError

    def item_vectors(self) -> np.ndarray:
        """Item representations per online row (zeros for rows the model does not know).

        Cached until the model or the item count changes (metrics ask on every event).
        """
        key = (self._vector_key(), self.n_items)
        cached = self.__dict__.get("_vectors")
        if cached is not None and cached[0] == key:
            return cached[1]
        out = np.zeros((self.n_items, self._reps.shape[1]), dtype=np.float32)
        rows = self._deep_row[: self.n_items]
        known = np.flatnonzero(rows >= 0)
        out[known] = self._reps[rows[known]]
        self._vectors = (key, out)
        return out


class DeepRankPart(FoldedDeep):
    """Fine-tuner rounds every ``round_every`` events plus a per-event user fold-in."""

    def __init__(self, *, round_every: int = 1000, round_growth: float = 0.1,
                 kind: str = "mf", n_factors: int = 32,
                 loss: str = "softmax", n_negatives: int = 64, lr: float = 0.01,
                 weight_decay: float = 1e-5, epochs: int = 2, batch_size: int = 512,
                 replay_capacity: int = 200_000, replay_ratio: float = 2.0,
                 fold_rate: float = 0.6, fold_weight: float = 3.0, seed: int = 0,
                 device: str = "cpu", logq: bool = True):
        if round_every < 1 or round_growth < 0 or not 0.0 <= fold_rate <= 1.0:
            raise ValueError("need round_every >= 1, round_growth >= 0, fold_rate in [0, 1]")
        from learning.finetune import FineTuner
        from learning.rank_deep import DeepRanker
        from learning.replay import ReplayBuffer

        self.round_every = round_every
        self.round_growth = round_growth
        self.trained_events = 0
        self.fold_rate = fold_rate
        self.fold_weight = fold_weight
        self.ranker = DeepRanker(kind, n_factors=n_factors, seed=seed)
        self.tuner = FineTuner(self.ranker, lr=lr, weight_decay=weight_decay,
                               batch_size=batch_size, epochs_per_round=epochs,
                               replay_ratio=replay_ratio, device=device, seed=seed,
                               loss=loss, n_negatives=n_negatives, logq=logq)
        self.buffer = ReplayBuffer(replay_capacity, recent_window=replay_capacity // 10,
                                   seed=seed)
        self.n_items = 0
        self.rounds = 0
        self._pending: tuple[list[str], list[str], list[float], list[float]] = ([], [], [], [])
        self._deep_row = np.zeros(0, dtype=np.int64)  # online row -> deep item row (-1)
        self._reps = np.zeros((0, n_factors), dtype=np.float32)
        self._bias = np.zeros(0, dtype=np.float32)
        self._users: dict[str, np.ndarray] = {}  # user_repr(p_u) of the frozen model, cached
        self._fold: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (a learner's checkpoint): the model and optimizer state as safetensors."""
        from learning import rank_deep

        state = self.__dict__.copy()
        state["ranker"] = rank_deep.dump(self.ranker)
        state["tuner"] = (self.tuner.snapshot(), str(self.tuner.device))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from learning import rank_deep
        from learning.finetune import FineTuner

        ranker = rank_deep.load(state["ranker"])
        blob, device = state["tuner"]
        state["ranker"], state["tuner"] = ranker, FineTuner.restore(ranker, blob, device)
        self.__dict__.update(state)

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """Fold the event into ``user``'s vector; train a round when ``round_every`` are due."""
        if item >= self.n_items:
            self.n_items = item + 1
        users, items, weights, times = self._pending
        users.append(user)
        items.append(str(item))
        weights.append(weight)
        times.append(ts)
        self._fold_event(user, item)
        positives = len(users) - self.__dict__.get("_pending_negatives", 0)
        if positives >= max(self.round_every, self.round_growth * self.trained_events):
            self.train_round()

    #: a hard negative's weight in the rounds (a click weighs 2 by default)
    hard_negative_weight = 0.5

    def learn_negative(self, user: str, item: int, ts: float = 0.0) -> None:
        """Learn that ``user`` was shown row ``item`` and did not take it.

        The fold-in moves away from the item (:meth:`FoldedDeep.learn_negative`), and the
        pair joins the next round as a hard negative (value ``-hard_negative_weight``:
        :func:`learning.rank_loss.ranking_step`), replayed afterwards like the positives.
        Rounds still come every ``round_every`` positives.
        """
        super().learn_negative(user, item, ts)
        if not 0 <= item < self.n_items or self.hard_negative_weight <= 0:
            return
        users, items, weights, times = self._pending
        users.append(user)
        items.append(str(item))
        weights.append(-self.hard_negative_weight)
        times.append(ts)
        self._pending_negatives = self.__dict__.get("_pending_negatives", 0) + 1

    def train_round(self) -> None:
        """One fine-tuner round on the pending events (plus replay); refresh the frozen view."""
        users, items, weights, times = self._pending
        if not users:
            return
        self.tuner.round(users, items, weights, times, self.buffer)
        self.trained_events += len(users) - self.__dict__.get("_pending_negatives", 0)
        self._pending_negatives = 0
        self._pending = ([], [], [], [])
        self.rounds += 1
        self.ranker.invalidate()
        self._reps, self._bias = self.ranker.item_matrix()
        ids = [str(r) for r in range(self.n_items)]
        self._deep_row = self.ranker.items.lookup(ids, now=0.0, add=False)
        self._users.clear()

    def _model_user(self, user: str) -> np.ndarray | None:
        row = self.ranker.users.lookup([user], now=0.0, add=False)[0]
        return self.ranker.user_reprs(np.array([row]))[0] if row >= 0 else None

    def _vector_key(self) -> object:
        return self.rounds


class DeepMix:
    """``base + w * deep`` (min-max scaled scores), ``w`` chosen online from ``grid``."""

    def __init__(self, base: Ranker, deep: FoldedDeep, *,
                 grid: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0), k: int = 10,
                 selection_decay: float = 0.999):
        self.base = base
        self.deep = deep
        self.grid = np.asarray(grid, dtype=np.float64)
        self.k = k
        self.selection_decay = selection_decay
        self.n_items = 0
        self._gains = np.zeros(len(grid))
        self._seen: dict[str, set[int]] = {}
        self._cache: tuple[str, int, np.ndarray, np.ndarray] | None = None
        self._events = 0

    @property
    def weight(self) -> float:
        """The deep weight in use now."""
        return float(self.grid[int(np.argmax(self._gains))])

    def _parts(self, user: str) -> tuple[np.ndarray, np.ndarray]:
        c = self._cache
        if c is not None and c[:2] == (user, self._events):
            return c[2], c[3]
        base = _scale(np.asarray(self.base.score_items(user), dtype=np.float64)[: self.n_items])
        deep = _scale(self.deep.score_items(user)[: self.n_items])
        self._cache = (user, self._events, base, deep)
        return base, deep

    def parts(self) -> dict[str, object]:
        """The mixed models by name."""
        return {"base": self.base, "deep": self.deep}

    def score_items(self, user: str) -> np.ndarray:
        """The mix with the weight in use."""
        if self.n_items == 0:
            return np.zeros(0)
        base, deep = self._parts(user)
        return base + self.weight * deep

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """Credit each grid weight with its NDCG@k on this event, then learn it."""
        seen = self._seen.get(user)
        if seen is not None and item < self.n_items and item not in seen:
            base, deep = self._parts(user)
            mixes = base[None, :] + self.grid[:, None] * deep[None, :]  # G x n
            if seen:
                mixes[:, np.fromiter(seen, np.int64, len(seen))] = -math.inf
            target = mixes[:, item]
            rank = 1 + np.count_nonzero(mixes > target[:, None], axis=1)
            gain = np.where(rank <= self.k, 1.0 / np.log2(rank + 1.0), 0.0)
            self._gains = self._gains * self.selection_decay + gain
        self.base.learn_one(user, item, weight, ts)
        self.deep.learn_one(user, item, weight, ts)
        self.n_items = max(self.n_items, item + 1)
        self._seen.setdefault(user, set()).add(item)
        self._events += 1

    def learn_negative(self, user: str, item: int, ts: float = 0.0) -> None:
        """An unclicked showing (the impression join) goes to each part that learns one."""
        for part in (self.base, self.deep):
            learn = getattr(part, "learn_negative", None)
            if callable(learn):
                learn(user, item, ts)
        self._cache = None

    def item_vectors(self) -> np.ndarray:
        """The deep part's item representations."""
        return self.deep.item_vectors()

    def describe(self) -> dict[str, Any]:
        """The weight in use and the grid's decayed gains."""
        return {"weight": self.weight, "gains": self._gains.tolist()}

