"""Top-k over the whole catalogue a ranking model knows, with exploration and MMR diversity.

:class:`TopK` serves any :class:`~learning.scorer.ItemScorer`: one score vector from
``score_items(user)`` (the model's popularity fallback covers cold users), the user's seen
rows masked, optionally restricted to ``candidates``, then ``np.argpartition`` and a sort of
the best few. No Python loop runs over the catalogue.

Two knobs change the list, both off by default so a served list is exactly the model's
ranking unless an operator opts in (and so that offline HR@K measures the model, not the
policy):

- ``explore``: a share of the ``k`` slots given to items among the ``explore_window`` most
  recently added rows (rows are append-only, so the highest rows are the newest items).
  ``floor(explore * k)`` slots always, one more with the fractional probability, the items
  and their positions drawn with a seeded generator (epsilon-style). New items otherwise
  never get the impressions they need to be learned; 0.05-0.1 is a sensible production
  setting.
- ``diversity``: the MMR lambda in ``[0, 1]`` (Carbonell & Goldstein 1998). The best
  ``pool * k`` items by relevance are re-ranked greedily by ``lambda * relevance - (1 -
  lambda) * max cosine similarity to the items already chosen``, relevance min-max scaled
  within the pool so lambda does not depend on the model's score scale. ``1`` is pure
  relevance (the plain top-k); ``None`` (default) skips it. A model whose
  ``item_vectors()`` is ``None`` gets the plain top-k (logged once).

Unknown ``candidates`` (ids the model has no row for) are skipped: the model cannot score
them. The scores returned are the model's own, also for explored items.

>>> import numpy as np
>>> class Scores:
...     def item_ids(self): return ["a", "b", "c", "d"]
...     def score_items(self, user): return np.array([0.1, 0.9, 0.5, 0.3])
...     def seen_items(self, user): return np.array([1] if user == "u1" else [], dtype=np.int64)
...     def item_vectors(self): return None
>>> TopK().recommend(Scores(), "u1", k=2)
[('c', 0.5), ('d', 0.3)]
>>> TopK().recommend(Scores(), "new-user", k=2, candidates=["a", "zzz", "d"])
[('d', 0.3), ('a', 0.1)]
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from model_store.errors import InvalidNameError

if TYPE_CHECKING:  # importing ``learning`` at run time would load torch into every subscriber
    from learning.scorer import ItemScorer

__all__ = ["SCORER_METHODS", "TopK", "is_item_scorer"]

log = logging.getLogger(__name__)

#: The methods of :class:`learning.scorer.ItemScorer`, checked by duck typing.
SCORER_METHODS = ("item_ids", "score_items", "seen_items", "item_vectors")


def is_item_scorer(obj: object) -> bool:
    """Whether ``obj`` has every :class:`~learning.scorer.ItemScorer` method.

    The same test as ``isinstance(obj, ItemScorer)`` without importing ``learning``.

    >>> is_item_scorer(b"weights")
    False
    """
    return all(callable(getattr(obj, name, None)) for name in SCORER_METHODS)


class TopK:
    """Recommend ``k`` items from an :class:`~learning.scorer.ItemScorer` (see the module).

    ``explore`` (share of slots for new items, default 0.0), ``explore_window`` (how many of
    the newest rows count as new, default 100), ``diversity`` (MMR lambda or ``None``,
    default ``None``), ``pool`` (MMR re-ranks the best ``pool * k`` items, default 5) and
    ``seed`` (the exploration generator; the same seed and the same calls give the same
    lists) are the whole configuration. Thread-safe.

    >>> import numpy as np
    >>> class Scores:
    ...     def item_ids(self): return [f"i{n}" for n in range(10)]
    ...     def score_items(self, user): return np.linspace(1.0, 0.1, 10)
    ...     def seen_items(self, user): return np.array([], dtype=np.int64)
    ...     def item_vectors(self): return None
    >>> picks = TopK(explore=0.5, explore_window=3, seed=1).recommend(Scores(), "u", k=4)
    >>> sum(item in ("i7", "i8", "i9") for item, _ in picks)
    2
    """

    def __init__(self, *, explore: float = 0.0, explore_window: int = 100,
                 diversity: float | None = None, pool: int = 5, seed: int = 0) -> None:
        if not 0.0 <= explore <= 1.0 or explore_window < 1 or pool < 1:
            raise InvalidNameError(
                f"explore={explore} must be in [0, 1], explore_window={explore_window} "
                f"and pool={pool} positive")
        if diversity is not None and not 0.0 <= diversity <= 1.0:
            raise InvalidNameError(f"diversity={diversity}: an MMR lambda must be in [0, 1]")
        self.explore = explore
        self.explore_window = explore_window
        self.diversity = diversity
        self.pool = pool
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._ids_cache: tuple[Any, list[str]] | None = None
        self._index: tuple[list[str], dict[str, int]] | None = None
        self._warned = False

    def recommend(self, model: ItemScorer, user: str, k: int = 10, *,
                  exclude_seen: bool = True,
                  candidates: Iterable[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` best items for ``user`` as ``(item, score)``, best first.

        Fewer than ``k`` when fewer items are eligible (never a seen one with
        ``exclude_seen``); unknown ``candidates`` are skipped.
        """
        if k < 1:
            raise InvalidNameError(f"k={k}: expected a positive number of items")
        if not is_item_scorer(model):
            raise TypeError(f"{type(model).__name__} does not implement ItemScorer")
        scores = np.asarray(model.score_items(user), dtype=np.float64)
        n = len(scores)
        ids = self._ids(model, scores.shape)
        if np.isnan(scores).any():
            scores = np.where(np.isnan(scores), -np.inf, scores)
        eligible = np.ones(n, dtype=bool)
        if exclude_seen:
            seen = np.asarray(model.seen_items(user), dtype=np.int64)
            eligible[seen[(seen >= 0) & (seen < n)]] = False
        if candidates is not None:
            rows = self._rows(ids, candidates)
            allowed = np.zeros(n, dtype=bool)
            allowed[rows] = True
            eligible &= allowed
        want = k * (self.pool if self.diversity is not None else 1)
        top = _top(scores, eligible, want)
        if self.diversity is not None and self.diversity < 1.0 and len(top) > k:
            top = self._mmr(model, scores, top, k)
        else:
            top = top[:k]
        n_explore = self._explore_slots(k, n)
        if n_explore:
            top = self._with_new_items(top, eligible, n, k, n_explore)
        return [(ids[r], float(scores[r])) for r in top.tolist()]

    # pieces -------------------------------------------------------------------------
    def _ids(self, model: Any, shape: tuple[int, ...]) -> list[str]:
        """``model.item_ids()``, copied once per model and catalogue size.

        Rows are append-only, so a list as long as the score vector is still the right one.
        """
        cached = self._ids_cache
        if cached is not None and cached[0] is model and (len(cached[1]),) == shape:
            return cached[1]
        ids = list(model.item_ids())
        if shape != (len(ids),):
            raise ValueError(f"score_items gave shape {shape} for {len(ids)} known items")
        self._ids_cache = (model, ids)
        return ids

    def _rows(self, ids: list[str], candidates: Iterable[str]) -> np.ndarray:
        """Row indices of the known ``candidates`` (the id index is built once per list)."""
        cached = self._index
        if cached is None or cached[0] is not ids:
            cached = (ids, {item: row for row, item in enumerate(ids)})
            self._index = cached
        index = cached[1]
        return np.fromiter((index[c] for c in dict.fromkeys(candidates) if c in index),
                           dtype=np.int64)

    def _explore_slots(self, k: int, n: int) -> int:
        if self.explore <= 0.0 or n == 0:
            return 0
        whole, frac = divmod(self.explore * k, 1.0)
        with self._lock:
            extra = frac > 0 and self._rng.random() < frac
        return min(k, int(whole) + int(extra))

    def _with_new_items(self, top: np.ndarray, eligible: np.ndarray, n: int, k: int,
                        n_explore: int) -> np.ndarray:
        """Give ``n_explore`` of the ``k`` slots to new eligible items, at seeded positions.

        New items the ranking already placed in its first ``k - n_explore`` do not count;
        slots no new item can fill go back to the ranking.
        """
        keep = top[:k - n_explore]
        newest = np.arange(max(0, n - self.explore_window), n)
        fresh = newest[eligible[newest] & ~np.isin(newest, keep)]
        with self._lock:
            picks = self._rng.permutation(fresh)[:n_explore]
            rest = top[~np.isin(top, picks)][:k - len(picks)]
            slots = np.sort(self._rng.choice(len(rest) + len(picks), len(picks), replace=False))
        out = rest.tolist()
        for slot, row in zip(slots.tolist(), picks.tolist(), strict=True):
            out.insert(slot, row)
        return np.asarray(out, dtype=np.int64)

    def _mmr(self, model: Any, scores: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
        vectors = model.item_vectors()
        if vectors is None:
            if not self._warned:
                self._warned = True
                log.warning("MMR diversity asked for, but %s has no item vectors: plain top-k",
                            type(model).__name__)
            return pool[:k]
        v = np.asarray(vectors, dtype=np.float64)[pool]
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        rel = scores[pool]
        finite = np.isfinite(rel)
        rel = np.where(finite, rel, rel[finite].min() if finite.any() else 0.0)
        span = rel.max() - rel.min()
        rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
        lam = float(self.diversity)  # type: ignore[arg-type]
        chosen: list[int] = []
        max_sim = np.full(len(pool), -math.inf)
        free = np.ones(len(pool), dtype=bool)
        for _ in range(k):
            gain = lam * rel - (1.0 - lam) * (max_sim if chosen else 0.0)
            gain[~free] = -math.inf
            best = int(np.argmax(gain))
            chosen.append(best)
            free[best] = False
            max_sim = np.maximum(max_sim, v @ v[best])
        return pool[chosen]


def _top(scores: np.ndarray, eligible: np.ndarray, want: int) -> np.ndarray:
    """Eligible rows with the ``want`` highest scores, best first (ties: lower row first)."""
    m = int(eligible.sum())
    want = min(want, m)
    if want <= 0:
        return np.empty(0, dtype=np.int64)
    n = len(scores)
    masked = scores if m == n else np.where(eligible, scores, -np.inf)
    part = np.argpartition(masked, n - want)[n - want:] if want < n else np.arange(n)
    part = part[eligible[part]]
    if len(part) < want:  # eligible items scored -inf tie with the masked ones
        rows = np.flatnonzero(eligible)
        part = rows[np.argsort(-masked[rows], kind="stable")[:want]]
    return part[np.lexsort((part, -masked[part]))].astype(np.int64)
