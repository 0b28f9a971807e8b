"""The online ranking learner: what the worker drives for the ranking task, and what is published.

Per event (Vinagre et al. 2014): if the user has an earlier event and the item was seen
before and is new to the user, rank every known item except the user's own, score the
rank (HR@k, NDCG@k, coverage, diversity, novelty; per blended part too), then learn the
event with the task's weight for its ``type``. ``learn_one`` returns the event's ranking
loss ``1 - NDCG@k`` (NaN when the event was not ranked), which the worker feeds to its
drift detector through :meth:`RankingLearner.loss`.

The learner implements :class:`~learning.scorer.ItemScorer`, so a subscriber can serve it.

>>> from stream.schema import Event
>>> learner = RankingLearner("decayed-popularity")
>>> for i, (user, item) in enumerate([("a", "x"), ("b", "x"), ("b", "y"), ("a", "y")]):
...     _ = learner.learn_one(Event(f"e{i}", user, item, "click", 1.0, float(i)))
>>> s = learner.score()
>>> s.n, s.hr, learner.cold_events, learner.item_ids()
(1, 1.0, 2, ['x', 'y'])
>>> learner.seen_items("a").tolist(), learner.score_items("new user").round(3).tolist()
([0, 1], [3.99, 3.998])
>>> clone = RankingLearner.restore(learner.snapshot())
>>> clone.score_items("a").tolist() == learner.score_items("a").tolist()
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from learning import rank_kernels as kernels
from learning.errors import ConfigurationError
from learning.rank_blend import SessionBlend
from learning.rank_bpr import BPR
from learning.rank_rerank import ListwiseRerank
from learning.rank_sequence import CoOccurrence
from learning.rankers import Popularity, Ranker, grow
from learning.ranking_metrics import RankingPrequential, RankingScore
from learning.snapshot import PickleSnapshot
from stream.schema import Event

__all__ = ["DEFAULT_WEIGHTS", "RANKING_MODELS", "RankingLearner", "make_ranker"]

DEFAULT_WEIGHTS: dict[str, float] = {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 4.0,
                                     "rating": 1.0}

# name -> factory(seed); the README's three baselines, the parts, and the blend
RANKING_MODELS: dict[str, Callable[[int], Ranker]] = {
    "popularity": lambda seed: Popularity(decay=1.0),
    "decayed-popularity": lambda seed: Popularity(decay=0.999),
    "bpr": lambda seed: BPR(32, n_negatives=4, sampling="uniform", item_bias=False, seed=seed),
    "bpr-pop": lambda seed: BPR(32, n_negatives=4, sampling="popularity", seed=seed),
    "co-occurrence": lambda seed: CoOccurrence(5, symmetric=True),
    "sequence": lambda seed: CoOccurrence(2, symmetric=False, position_decay=0.3),
    "blend": lambda seed: SessionBlend(),
    # the fine-tuner's model, rounds every N events + fold-in (torch imported when built)
    "deep": lambda seed: _deep("deep", seed),
    "deep-blend": lambda seed: _deep("deep-blend", seed),
    "rerank": lambda seed: ListwiseRerank(),
    "rerank-knn": lambda seed: _rerank_knn(),
    "rerank-mlp": lambda seed: _rerank_mlp(seed),
    "rerank-bpr": lambda seed: _rerank_bpr(seed),
    "rerank-bpr2": lambda seed: _rerank_bpr(seed, bpr_models=2),  # two BPR parts, mean score
    "rerank-bpr-uni": lambda seed: _rerank_bpr(seed, bpr_second="uniform"),  # + uniform BPR
}
# a model with candidate_scores measures its parts (dense passes) on every n-th ranked event
PART_EVERY = 10


def _rerank_knn() -> Ranker:
    from learning.rank_rerank_knn import KNNRerank  # a subclass of ListwiseRerank

    return KNNRerank()


def _rerank_mlp(seed: int) -> Ranker:
    from learning.rank_rerank_mlp import MLPRerank  # a subclass of KNNRerank

    return MLPRerank(seed=seed)


def _rerank_bpr(seed: int, bpr_models: int = 1, bpr_second: str | None = None) -> Ranker:
    from learning.rank_rerank_bpr import BPRRerank  # a subclass of MLPRerank

    return BPRRerank(seed=seed, bpr_models=bpr_models, bpr_second=bpr_second)


def _deep(name: str, seed: int) -> Ranker:
    from learning.rank_deep_online import DeepMix, DeepRankPart

    part = DeepRankPart(seed=seed)
    return part if name == "deep" else DeepMix(SessionBlend(), part)


def make_ranker(model: str, seed: int = 42) -> Ranker:
    """Build a ranking model by name (see :data:`RANKING_MODELS`).

    >>> type(make_ranker("blend")).__name__
    'SessionBlend'
    """
    try:
        factory = RANKING_MODELS[model]
    except KeyError:
        raise ConfigurationError(f"unknown ranking model {model!r}; expected one of "
                                 f"{', '.join(RANKING_MODELS)}") from None
    return factory(seed)


class RankingLearner(PickleSnapshot):
    """An online ranker updated per event with prequential ranking figures (module doc).

    ``weights`` maps an event ``type`` to its positive weight (defaults: view 1, click 2,
    cart 3, purchase 4, rating 1: any rating is one interaction, as the README treats
    MovieTweetings). ``part_metrics`` also scores every part of a blend on its own.
    ``follow_deep`` mixes in the deep ranker the fine-tuner publishes (:meth:`set_deep`,
    :mod:`learning.rank_deep_follow`; ``lifelong learn --task ranking --blend-with``).
    """

    def __init__(self, model: str = "blend", *, weights: Mapping[str, float] | None = None,
                 k: int = 10, window: int = 1000, seed: int = 42, part_metrics: bool = True,
                 follow_deep: bool = False):
        self.model_name = model
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        bad = {t: w for t, w in self.weights.items() if not w > 0}
        if bad:
            raise ConfigurationError(f"event weights must be positive, got {bad}")
        self.k = k
        self.window = window
        self.seed = seed
        self.part_metrics = part_metrics
        self._ids: list[str] = []
        self.ranker = make_ranker(model, seed)
        self._metrics = RankingPrequential(k, window)
        parts = (self.ranker.parts()
                 if isinstance(self.ranker, SessionBlend | ListwiseRerank) else {})
        self._part_metrics = {name: RankingPrequential(k, window)
                              for name in (parts if part_metrics else {})}
        self._index: dict[str, int] = {}
        self._seen: dict[str, set[int]] = {}
        self._counts = np.zeros(0)
        self.events_seen = 0
        self.cold_events = 0
        if follow_deep:
            self.enable_follow_deep()

    def learn_one(self, event: Event) -> float:
        """Rank (if the event qualifies), score, then learn; return ``1 - NDCG@k`` or NaN."""
        user = event.user_id
        row = self._index.get(event.item_id)
        seen = self._seen.get(user)
        loss = math.nan
        if seen is None:
            self.cold_events += 1
        elif row is not None and row not in seen:
            loss = self._rank(user, row, seen, event.ts)
        if row is None:
            row = self._index[event.item_id] = len(self._ids)
            self._ids.append(event.item_id)
            self._counts = grow(self._counts, row + 1)
        self.ranker.learn_one(user, row, self.weights.get(event.type, 1.0), event.ts)
        self._counts[row] += 1
        if seen is None:
            seen = self._seen[user] = set()
        seen.add(row)
        self.events_seen += 1
        return loss

    def _rank(self, user: str, row: int, seen: set[int], now: float) -> float:
        exclude = np.fromiter(seen, np.int64, len(seen))
        counts = self._counts[: len(self._ids)]
        figures = {"popularity": counts, "popularity_total": self.events_seen}
        if isinstance(self.ranker, ListwiseRerank):
            return self._rank_candidates(self.ranker, user, row, exclude, now, figures)
        if not isinstance(self.ranker, SessionBlend):
            outcome = self._metrics.update(self.ranker.score_items(user), row, exclude,
                                           item_vectors=self.item_vectors(), **figures)
            return 1.0 - outcome.ndcg
        blend = self.ranker
        # with weights (0, 0) the blend's scores are exactly its popularity part's
        pure = blend.weights(blend.state(user, now)) == (0.0, 0.0)
        parts = blend.part_scores(user)
        measured = None
        for name, part in parts.items():
            if name in self._part_metrics:
                rank, top = self._part_metrics[name].measure(part, row, exclude)
                self._part_metrics[name].record(rank, top, len(part), **figures)
                if pure and name == "popularity":
                    measured = (rank, top, len(part))
        if measured is None:
            scores = blend.score_items(user, now=now)
            measured = (*self._metrics.measure(scores, row, exclude), len(scores))
        outcome = self._metrics.record(*measured, **figures)
        return 1.0 - outcome.ndcg

    def _rank_candidates(self, ranker: ListwiseRerank, user: str, row: int,
                         exclude: np.ndarray, now: float, figures: dict[str, Any]) -> float:
        """Rank from the model's candidates (same figures as its dense scores); parts sampled."""
        rows, values = ranker.candidate_scores(user, now)
        n = ranker.n_items
        measured = self._metrics.measure_candidates(
            rows, values, row, exclude, lambda: ranker.score_items(user, now), n,
            floor=ranker.floor_scores, exact_rank=False)  # only hit / gain are figures
        outcome = self._metrics.record(*measured, n, **figures)
        if self._part_metrics and self._metrics.n % PART_EVERY == 1:
            for name, part in ranker.parts().items():
                metrics = self._part_metrics[name]
                if kernels.ENABLED and isinstance(part, CoOccurrence):
                    _sparse_part_update(metrics, part, user, row, exclude, n, figures)
                else:
                    metrics.update(part.score_items(user), row, exclude,  # type: ignore[attr-defined]
                                   **figures)
        return 1.0 - outcome.ndcg

    def learn_negative(self, user: str, item: str, ts: float = 0.0) -> bool:
        """Learn that ``user`` was shown ``item`` and did not take it (an impression join).

        The ranker learns it when it can (a ``learn_negative(user, row, ts)`` method); unless
        the ranker keeps its own memory of them (``remembers_negatives``: rerank), the item
        is discounted in ``user``'s served scores (:meth:`score_items`): each unclicked
        showing lowers it by ``negative_penalty`` of the score range, up to three.
        At most ``max_negatives`` items per user are remembered. False for an unknown item.
        """
        row = self._index.get(item)
        if row is None:
            return False
        learn = getattr(self.ranker, "learn_negative", None)
        if callable(learn):
            learn(user, row, ts)
        shown = self.__dict__.setdefault("_shown", {}).setdefault(user, {})
        shown[row] = shown.pop(row, 0) + 1  # re-inserted: most recent last
        if len(shown) > self.max_negatives:
            del shown[next(iter(shown))]
        self.negatives_learned = getattr(self, "negatives_learned", 0) + 1
        return True

    #: share of the score range one unclicked showing costs an item (see learn_negative)
    negative_penalty = 0.1
    max_negatives = 100

    @property
    def follows_deep(self) -> bool:
        """Whether the ranker mixes in a published deep ranker (``follow_deep``)."""
        return type(getattr(self.ranker, "deep", None)).__name__ == "FollowedDeep"

    @property
    def deep_version(self) -> int | None:
        """The followed deep ranker's version in use (None: none yet, or not following)."""
        return self.ranker.deep.version if self.follows_deep else None  # type: ignore[attr-defined]

    def enable_follow_deep(self) -> None:
        """Mix a published deep ranker into this learner's ranker from now on (idempotent).

        The ranker becomes ``DeepMix(ranker, FollowedDeep(...))``: its learned state is kept;
        the deep part scores nothing until :meth:`set_deep` hands it a model.
        """
        if self.follows_deep:
            return
        from learning.rank_deep_follow import FollowedDeep
        from learning.rank_deep_online import DeepMix

        part = FollowedDeep(self._ids)
        part.n_items = len(self._ids)
        self.ranker = DeepMix(self.ranker, part)
        self.ranker.n_items = len(self._ids)
        self.ranker._seen = {user: set(rows) for user, rows in self._seen.items()}

    def set_deep(self, model: Any, version: int | None = None) -> None:
        """Mix the published deep ranker ``model`` in from the next event (any thread)."""
        if not self.follows_deep:
            raise ConfigurationError("this ranking learner was built without follow_deep")
        self.ranker.deep.offer(model, version)  # type: ignore[attr-defined]

    def loss(self, event: Event, returned: float) -> float | None:
        """The drift detector's input for ``event``: its ranking loss, None if not ranked."""
        return None if math.isnan(returned) else returned

    def score(self) -> RankingScore:
        """The prequential ranking figures so far."""
        return self._metrics.score()

    def part_scores(self) -> dict[str, RankingScore]:
        """The same figures for each part of a blend, ranked on its own (empty otherwise)."""
        return {name: m.score() for name, m in self._part_metrics.items()}

    # ItemScorer
    def item_ids(self) -> list[str]:
        """Known items in row order (append-only)."""
        return list(self._ids)

    def score_items(self, user: str) -> np.ndarray:
        """One float64 score per known item; a cold user gets decayed popularity.

        Items shown to ``user`` and not clicked (:meth:`learn_negative`) are discounted.
        """
        scores = np.asarray(self.ranker.score_items(user), dtype=np.float64)[: len(self._ids)]
        shown = self.__dict__.get("_shown", {}).get(user)
        if getattr(self.ranker, "remembers_negatives", False):
            shown = None  # the ranker discounts them itself (rerank)
        if shown and len(scores):
            rows = np.fromiter(shown, np.int64, len(shown))
            times = np.minimum(np.fromiter(shown.values(), np.float64, len(shown)), 3.0)
            span = float(scores.max() - scores.min()) or 1.0
            scores = scores.copy()
            scores[rows] -= self.negative_penalty * span * times
        return scores

    def seen_items(self, user: str) -> np.ndarray:
        """Rows of the items ``user`` interacted with, ascending (empty if unknown)."""
        return np.array(sorted(self._seen.get(user, ())), dtype=np.int64)

    def item_vectors(self) -> np.ndarray | None:
        """Item embeddings when the model has them (BPR), else None."""
        vectors = getattr(self.ranker, "item_vectors", None)
        return vectors() if callable(vectors) else None

    def describe(self) -> dict[str, Any]:
        """Counters for reports."""
        return {"events": self.events_seen, "evaluated": self._metrics.n,
                "cold_users": self.cold_events, "items": len(self._ids),
                "users": len(self._seen)}

    def forget_user(self, user: str) -> int:
        """Erase ``user``: their seen items and the ranker's per-user state; entries removed.

        Afterwards ``score_items``, ``seen_items`` (and a subscriber's ``recommend``) treat
        them as a never-seen user (:func:`learning.erasure.forget_ranker_user`).
        """
        from learning.erasure import forget_attached, forget_ranker_user

        removed = int(self._seen.pop(user, None) is not None) + forget_attached(self, user)
        removed += self.__dict__.get("_shown", {}).pop(user, None) is not None  # negatives
        return removed + forget_ranker_user(self.ranker, user)


def _sparse_part_update(metrics: RankingPrequential, part: CoOccurrence, user: str, row: int,
                        exclude: np.ndarray, n: int, figures: dict[str, Any]) -> None:
    """``metrics.update(part.score_items(user), row, exclude, **figures)`` from its non-zero rows.

    The part's other rows score 0, below every non-zero (positive) one, so
    :meth:`~learning.ranking_metrics.RankingPrequential.measure_candidates` gives the same
    hit, gain and top (the rank itself may be a bound beyond ``k``); the dense scores are
    built only when fewer than ``k`` non-zero rows are left.
    """
    buf = metrics.float_scratch(n)
    rows, values = kernels.part_scores(*part.kernel_args(user), buf)  # type: ignore[call-arg]
    measured = metrics.measure_candidates(rows, values, row, exclude,
                                          lambda: part.score_items(user), n,
                                          floor=lambda: buf[:n], exact_rank=False)
    metrics.record(*measured, n, **figures)
