"""The MLP reranker plus an online BPR's taste score: ``rerank-bpr``.

:class:`BPRRerank` is :class:`~learning.rank_rerank_mlp.MLPRerank` (popularity,
co-occurrence, sequence and whole-history item-kNN candidates; crossed linear score plus a
tanh MLP, one listwise softmax step per event) with a fourth personal part: an online
:class:`~learning.rank_bpr.BPR` (32 factors, 4 negatives drawn by popularity from the last
100k events, SGD per event), which learns every event after the reranker. Every candidate
gets two more columns (:data:`BPR_FEATURES`): its BPR score standardised over the list
(``(s - mean) / std``) and its rank in the list by that score over the list's length (a
cold user, unknown to BPR: 0 and 0.5). The kNN and co-occurrence parts count which items
go together; BPR's factors place the user's whole taste among every item's, a different
view of the same history that the reranker learns to weigh per context. With ``n_bpr``
> 0 the user's ``n_bpr`` best BPR items also join the candidates; without them BPR scores
only the candidate rows (:meth:`~learning.rank_bpr.BPR.score_rows`, the same figures).

``bpr_models`` > 1 (model ``rerank-bpr2``: 2) trains that many BPR parts with seeds
``seed + 7``, ``seed + 8``, ... on the same events; the columns use their mean score (the
average over initialisations and negative draws, so less of a single BPR's chance).
``bpr_last`` > 0 adds a column ``bpr_last``: each candidate's factor vector dotted with the
mean factors of the user's last ``bpr_last`` items, standardised over the list (a taste
transition through BPR's item space; tried, not kept). ``bpr_pool`` is the negatives' pool.

Erasure goes through :meth:`parts`: BPR zeroes and unlinks the user's factor row, the
other parts drop the user's items; the network and the linear weights are global.

>>> r = BPRRerank(n_popular=2, n_personal=2, n_knn=2, hidden=4, seed=3)
>>> stream = [("u", 0), ("v", 0), ("u", 1), ("w", 1), ("w", 2), ("v", 3)]
>>> for t, (user, item) in enumerate(stream):
...     r.learn_one(user, item, ts=float(t))
>>> r.feature_names[-2:], sorted(r.parts())
(('bpr_z', 'bpr_rank'), ['bpr', 'co_occurrence', 'item_knn', 'popularity', 'sequence'])
>>> rows, values = r.candidate_scores("w")  # scored with the BPR columns
>>> bool(np.isfinite(values).all()) and r.score_items("w")[rows].tolist() == values.tolist()
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learning.rank_bpr import BPR
from learning.rank_rerank_knn import KNN_FEATURES
from learning.rank_rerank_mlp import MLPRerank

__all__ = ["BPR_FEATURES", "BPRRerank"]

BPR_FEATURES: tuple[str, ...] = (*KNN_FEATURES, "bpr_z", "bpr_rank")


class BPRRerank(MLPRerank):
    """:class:`MLPRerank` with an online BPR part as a feature (and source) (module doc)."""

    feature_names = BPR_FEATURES

    def __init__(self, *, bpr_factors: int = 32, bpr_negatives: int = 4,
                 bpr_lr: float = 0.05, bpr_sampling: str = "popularity", n_bpr: int = 0,
                 bpr_models: int = 1, bpr_last: int = 0, bpr_pool: int = 100_000,
                 **kwargs: Any):
        if bpr_last < 0:
            raise ValueError(f"bpr_last must be >= 0, got {bpr_last}")
        self.bpr_last = bpr_last
        if bpr_last:  # one more column (before the parent sizes its weights by the names)
            self.feature_names = (*BPR_FEATURES, "bpr_last")
        super().__init__(**kwargs)
        if n_bpr < 0:
            raise ValueError(f"n_bpr must be >= 0, got {n_bpr}")
        if bpr_models < 1:
            raise ValueError(f"bpr_models must be >= 1, got {bpr_models}")
        self.n_bpr = n_bpr
        self.bprs = [BPR(bpr_factors, n_negatives=bpr_negatives, sampling=bpr_sampling,
                         lr=bpr_lr, pool_size=bpr_pool, seed=self.seed + 7 + i)
                     for i in range(bpr_models)]
        self.bpr = self.bprs[0]
        self._bpr_scores: np.ndarray | None = None  # the user's, between the two hooks

    def parts(self) -> dict[str, object]:
        """The candidate sources by name (``rerank-knn``'s, ``bpr``, ``bpr_2``, ...)."""
        bprs = {"bpr" if i == 0 else f"bpr_{i + 1}": b for i, b in enumerate(self.bprs)}
        return {**super().parts(), **bprs}

    def bpr_scores(self, user: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The BPR parts' mean score of ``rows`` (every item when None) for ``user``."""
        if rows is None:
            out = np.zeros(self.n_items)
            for b in self.bprs:
                s = b.score_items(user)
                out[: len(s)] += s  # shorter only when fed other events than the reranker's
        else:
            out = np.zeros(len(rows))
            for b in self.bprs:
                known = rows < b.n_items
                out[known] += b.score_rows(user, rows[known])
        if len(self.bprs) > 1:
            out /= len(self.bprs)
        return out

    def _extra_candidates(self, user: str, mask: np.ndarray) -> None:
        """The ``n_bpr`` best items by BPR join the candidates (a known user)."""
        self._bpr_scores = None
        if self.n_bpr and user in self.bpr._users and self.n_items > self.n_bpr:
            self._bpr_scores = scores = self.bpr_scores(user)
            mask[np.argpartition(-scores, self.n_bpr)[: self.n_bpr]] = True

    def _extra_features(self, user: str, rows: np.ndarray, out: np.ndarray) -> None:
        """The BPR score standardised over the list, and its rank share in the list."""
        scores, self._bpr_scores = self._bpr_scores, None
        if user not in self.bpr._users:
            out[:, 0] = 0.0
            out[:, 1] = 0.5
            out[:, 2:] = 0.0
            return
        s = self.bpr_scores(user, rows) if scores is None else scores[rows]
        out[:, 0] = (s - s.mean()) / (s.std() + 1e-9)
        order = np.empty(len(rows))
        order[np.argsort(-s, kind="stable")] = np.arange(len(rows))
        out[:, 1] = order / max(len(rows), 1)
        if self.bpr_last:
            out[:, 2] = self._last_items_affinity(user, rows)

    def _last_items_affinity(self, user: str, rows: np.ndarray) -> np.ndarray:
        """``q_row . mean(q of the user's last bpr_last items)``, standardised over the list."""
        recent = self.knn._recent.get(user)
        if not recent:
            return np.zeros(len(rows))
        last = np.fromiter(list(recent)[-self.bpr_last:], np.int64)
        d = np.zeros(len(rows))
        for b in self.bprs:
            known = rows < b.n_items
            mine = last[last < b.n_items]
            if len(mine):
                d[known] += b._items[rows[known]] @ b._items[mine].mean(axis=0)
        return (d - d.mean()) / (d.std() + 1e-9)

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """The MLP reranker's step and parts, then each BPR part learns the event."""
        super().learn_one(user, item, weight, ts)
        for b in self.bprs:
            b.learn_one(user, item, weight, ts)
