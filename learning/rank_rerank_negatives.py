"""What a shown, unclicked item teaches :class:`~learning.rank_rerank.ListwiseRerank`.

The impression join (:mod:`consumers.impressions`) hands the ranking learner every item a
user was shown and did not take within the window; :class:`RerankNegatives` is the
reranker's half of it (a mixin: it works on the reranker's candidates, features and
weights):

* a per-user **shown-and-skipped memory** that lowers the item in the user's next lists
  (bounded, fading, pickled with the model, erased by ``forget``);
* a **pairwise step**: the user's last positive (within ``pair_window``) beat the shown item;
* a **listwise step** on ``log(1 - p_item)`` over the user's candidates (off by default).

Defaults and what they gain: docs/ranking.md, "Negatives end to end" (``bench/feedback.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["RerankNegatives"]


class RerankNegatives:
    """:meth:`learn_negative` and the skip memory of the reranker (see the module doc)."""

    # the reranker's state this works on (learning.rank_rerank.ListwiseRerank)
    n_items: int
    lr: float
    co_occurrence: Any
    sequence: Any
    _w: np.ndarray
    _g2: np.ndarray
    _seen: dict[str, set[int]]
    _last_ts: dict[str, float]
    _events: int
    _clock: float
    _scored: Any
    _cache: Any
    _features: Any
    _seen_mask: Any
    weights: Any

    #: logit one recent unclicked showing costs an item in the user's next lists
    skip_penalty = 1.0
    #: showings counted at most (the discount is capped at ``skip_cap * skip_penalty``)
    skip_cap = 3.0
    #: e-folding time (seconds of event time) of a showing's discount
    skip_time_scale = 86400.0
    #: items remembered per user (the oldest showing goes first)
    max_skipped = 50
    #: a negative's listwise step, relative to a positive's; 0 (no step) by default: in the
    #: simulated feedback loop (bench/feedback.py, a world apart from the reported ones)
    #: weights 0.05-0.5 lowered the CTR by 2-16 %, the memory alone raised it by 12 % (measured
    #: before a fix of the item's own gradient: docs/ranking.md)
    negative_weight = 0.0
    #: a pairwise step "the user's last positive beat this shown item" (within
    #: ``pair_window`` seconds of it), relative to a positive's listwise step; 0.1 raised
    #: the loop's CTR over the memory alone on the two worlds it was chosen on (x1.07, x1.10)
    pair_weight = 0.1
    pair_window = 3600.0
    #: the ranking learner need not discount shown items again (it has its own memory)
    remembers_negatives = True

    def learn_negative(self, user: str, item: int, ts: float = 0.0) -> None:
        """Learn that ``user`` was shown row ``item`` at ``ts`` and did not take it.

        With ``negative_weight > 0`` (default 0: it hurt, see the attribute), when the user
        has a history and ``item`` is among their unseen candidates, one Adagrad step
        (``negative_weight`` of a positive's, shared and context weights as for positives)
        on ``log(1 - p_item)`` of the softmax over that list: ``grad_i = p_item (p_i -
        [i = item]) / (1 - p_item)`` per candidate. With ``pair_weight > 0`` (default 0.1),
        when the user's last positive came at most ``pair_window`` seconds before, one
        pairwise Adagrad step on ``log sigmoid(s_last - s_item)`` over the same features
        (both were exposed, one was taken: the contrast an impression carries; the item
        must be a candidate). Whatever the user, the
        item is remembered as shown and skipped: in their next lists its score drops by
        ``skip_penalty`` per showing (at most ``skip_cap``), fading as ``exp(-age /
        skip_time_scale)``; at most ``max_skipped`` items per user (erased by ``forget``).
        An unknown item is ignored.

        >>> from learning.rank_rerank import ListwiseRerank
        >>> r = ListwiseRerank(n_popular=3, n_personal=3)
        >>> for t, (user, item) in enumerate([("a", 0), ("b", 1), ("b", 2), ("a", 1)]):
        ...     r.learn_one(user, item, ts=float(t))
        >>> before = r.score_items("b")[0]
        >>> r.learn_negative("b", 0, ts=4.0)
        >>> bool(r.score_items("b")[0] < before)
        True
        """
        if not 0 <= item < self.n_items:
            return
        seen = self._seen.get(user, set())
        if self.negative_weight > 0 and user in self._last_ts and item not in seen:
            rows, feats, raw, ctx = self._scored(user, ts)
            at = int(np.searchsorted(rows, item))
            if at < len(rows) and rows[at] == item:
                z = raw.copy()
                if seen:
                    z[self._seen_mask(seen, rows)] = -np.inf
                p = np.exp(z - z.max())
                p /= p.sum()
                if len(rows) > 1 and p[at] < 1.0 - 1e-12:
                    g = p * (p[at] / (1.0 - p[at]))  # d log(1 - p_item) / d score_i
                    g[at] = -p[at]  # p_item (p_item - 1) / (1 - p_item)
                    grad = self.negative_weight * (g @ feats)
                    for c in (0, ctx):
                        self._g2[c] += grad * grad
                        self._w[c] += self.lr * grad / np.sqrt(self._g2[c])
        if self.pair_weight > 0 and item not in seen:
            self._pair_step(user, item, ts)
        self._cache = None  # the cached raw scores came from the weights before this step
        memory = self.__dict__.setdefault("_skipped", {}).setdefault(user, {})
        old = memory.pop(item, None)  # re-inserted: the most recent showing last
        strength = 1.0 if old is None else \
            1.0 + old[0] * math.exp(-max(ts - old[1], 0.0) / self.skip_time_scale)
        memory[item] = (strength, ts)
        if len(memory) > self.max_skipped:
            del memory[next(iter(memory))]

    def _pair_step(self, user: str, item: int, ts: float) -> None:
        """Adagrad on ``log sigmoid(s_last - s_item)``: the last positive beat the shown item."""
        last = self._last_ts.get(user)
        recent = self.co_occurrence._recent.get(user)
        if last is None or not recent or ts - last > self.pair_window or recent[-1] == item:
            return
        pos = int(recent[-1])
        key = (user, self._events, ts)
        cached = self.__dict__.get("_pair_cache")
        if cached is None or cached[0] != key:
            rows, _, _, ctx = self._scored(user, ts)
            rows = np.union1d(rows, [pos])
            feats = self._features(rows, self.co_occurrence.score_items(user),
                                   self.sequence.score_items(user), user)
            cached = self._pair_cache = (key, rows, feats, ctx)
        _, rows, feats, ctx = cached
        at = int(np.searchsorted(rows, item))
        if at >= len(rows) or rows[at] != item:
            return
        diff = feats[int(np.searchsorted(rows, pos))] - feats[at]
        x = float(diff @ self.weights(ctx))
        grad = (self.pair_weight / (1.0 + math.exp(min(max(x, -35.0), 35.0)))) * diff
        for c in (0, ctx):
            self._g2[c] += grad * grad
            self._w[c] += self.lr * grad / np.sqrt(self._g2[c])

    def skipped(self, user: str, now: float | None = None) -> dict[int, float]:
        """Rows ``user`` was shown and skipped, with their discount (logits) at ``now``."""
        memory = self.__dict__.get("_skipped", {}).get(user)
        if not memory:
            return {}
        now = self._clock if now is None else now
        cap, scale, pen = self.skip_cap, self.skip_time_scale, self.skip_penalty
        return {row: pen * min(s * math.exp(-max(now - t, 0.0) / scale), cap)
                for row, (s, t) in memory.items()}

    def _skip_discount(self, user: str, rows: np.ndarray, raw: np.ndarray,
                       now: float) -> np.ndarray:
        """``raw`` with the user's shown-and-skipped candidates lowered (see learn_negative)."""
        if not self.__dict__.get("_skipped", {}).get(user):
            return raw
        out = raw.copy()
        for row, cost in self.skipped(user, now).items():
            at = int(np.searchsorted(rows, row))
            if at < len(rows) and rows[at] == row:
                out[at] -= cost
        return out
