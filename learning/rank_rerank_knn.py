"""The listwise reranker with a third personal source: item-kNN over the user's whole history.

:class:`KNNRerank` is :class:`~learning.rank_rerank.ListwiseRerank` (same popularity,
co-occurrence and sequence sources, same features, contexts, listwise Adagrad step) plus
:class:`~learning.rank_knn.HistoryKNN`: the ``n_knn`` items with the best cosine item-kNN
score over the user's last ``knn_history`` items (pairs learned over their last 400, each
counted ``1 / log2(1 + n)`` for a user with ``n`` earlier items, fading x0.9999 per event)
join the candidates, and every candidate gets three more feature columns
(:data:`KNN_FEATURES`: its kNN score relative to the list's best, whether it has one, and
``log1p`` of the raw score). The co-occurrence source links only the last five items and
fades x0.9995 per event; the kNN source remembers a user's longer past and the items
that went with it, which is what heavy raters on MovieTweetings return to.

>>> r = KNNRerank(n_popular=3, n_personal=3, n_knn=3)
>>> for t, (user, item) in enumerate([("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 2)]):
...     r.learn_one(user, item, ts=float(t))
>>> rows, values = r.candidate_scores("c")
>>> rows.tolist(), bool(values.min() > 1.0)
([0, 1, 2], True)
>>> r.score_items("c")[rows].tolist() == values.tolist()
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learning import rank_kernels as kernels
from learning.rank_knn import HistoryKNN
from learning.rank_rerank import _N_CTX, FEATURES, ListwiseRerank

__all__ = ["KNN_FEATURES", "KNNRerank"]

KNN_FEATURES: tuple[str, ...] = (*FEATURES, "knn", "knn_any", "knn_raw")


class KNNRerank(ListwiseRerank):
    """:class:`ListwiseRerank` with whole-history item-kNN candidates and features (module doc).

    A subclass adds sources through :attr:`feature_names` (its columns after
    :data:`KNN_FEATURES`), :meth:`_extra_candidates` and :meth:`_extra_features`.
    """

    #: the feature columns, in order (a subclass appends its own)
    feature_names: tuple[str, ...] = KNN_FEATURES

    def __init__(self, *, n_knn: int = 50, knn_history: int = 50, knn_decay: float = 0.9999,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if n_knn < 1:
            raise ValueError(f"n_knn must be >= 1, got {n_knn}")
        self.n_knn = n_knn
        self.knn = HistoryKNN(knn_history, decay=knn_decay)
        self._w = np.zeros((_N_CTX, len(self.feature_names)))
        self._w[0, 1] = 1.0  # start as decayed popularity (x0.999), as the base model
        self._g2 = np.full((_N_CTX, len(self.feature_names)), 1e-6)

    def parts(self) -> dict[str, object]:
        """The candidate sources by name (the base model's and ``item_knn``)."""
        return {**super().parts(), "item_knn": self.knn}

    def _scored(self, user: str, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Candidate rows (ascending), their features and raw scores, and the context."""
        cache = self._cache
        if cache is not None and cache[:3] == (user, self._events, now):
            rows, feats, ctx = cache[3], cache[4], cache[5]
        else:
            if self._popular is None:
                self._popular = np.concatenate([t.rows() for t in self._tops])
            mask = np.zeros(self.n_items, dtype=bool)
            mask[self._popular] = True
            dense = []
            for part, size in ((self.co_occurrence, self.n_personal),
                               (self.sequence, self.n_personal), (self.knn, self.n_knn)):
                scores = part.score_items(user)
                support = np.flatnonzero(scores != 0.0)
                if len(support) > size:
                    keep = np.argpartition(-scores[support], size)
                    support = support[keep[:size]]
                mask[support] = True
                dense.append(scores)
            self._extra_candidates(user, mask)
            rows = np.flatnonzero(mask)
            self._now = now
            feats = np.empty((len(rows), len(self.feature_names)))
            if kernels.ENABLED:  # bit-identical to the numpy reference (test_rank_knn)
                feats[:, : len(FEATURES)] = self._features_compiled(
                    rows, dense[0][rows], dense[1][rows], user)
            else:
                feats[:, : len(FEATURES)] = self._features(rows, dense[0], dense[1], user)
            knn = dense[2][rows]
            top = knn.max(initial=0.0)
            k = len(KNN_FEATURES)
            feats[:, k - 3] = knn / top if top > 0 else 0.0
            feats[:, k - 2] = knn > 0
            np.log1p(knn, out=feats[:, k - 1])
            if k < feats.shape[1]:
                self._extra_features(user, rows, feats[:, k:])
            ctx = self.context(user, now)
            self._cache = (user, self._events, now, rows, feats, ctx)
        return rows, feats, feats @ self.weights(ctx), ctx

    def _extra_candidates(self, user: str, mask: np.ndarray) -> None:
        """Mark a subclass's own candidate rows in ``mask`` (none here)."""

    def _extra_features(self, user: str, rows: np.ndarray, out: np.ndarray) -> None:
        """Fill a subclass's columns (after :data:`KNN_FEATURES`) for ``rows``."""
        raise NotImplementedError(f"{type(self).__name__} declares columns it does not fill")

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """The base model's step and sources, then the kNN source learns the event."""
        super().learn_one(user, item, weight, ts)
        self.knn.learn_one(user, item, weight, ts)
