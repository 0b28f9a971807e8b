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

``bpr_second`` (``"uniform"``: model ``rerank-bpr-uni``, the best on MovieTweetings, round
8) adds a second BPR part (seed ``seed + 17``) with its own sampling and its own two
columns ``bpr2_z``, ``bpr2_rank``: trained against uniform negatives it learns popularity
into its biases, the popularity-negative part learns taste beyond popularity, and the
reranker weighs both. Tried, not kept (docs/ranking.md, round 8): ``bpr_hard`` > 0 adds
that many negatives per event drawn from the user's unseen candidates (``bpr_hard_from``
``"list"``: uniformly; ``"bpr-top"``: among the list's ``bpr_hard_top`` best by BPR);
``mlp_heads`` > 1 trains that many MLP heads (own init, own Adam step on ``log
softmax(linear + head)``) and scores ``linear + mean(heads)``.

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
from learning.rank_rerank_knn import KNN_FEATURES, KNNRerank
from learning.rank_rerank_mlp import _BETA1, _BETA2, _EPS, MLPRerank, network_gradients

__all__ = ["BPR_FEATURES", "BPRRerank"]

BPR_FEATURES: tuple[str, ...] = (*KNN_FEATURES, "bpr_z", "bpr_rank")


def _z_and_rank(s: np.ndarray, z: np.ndarray, rank: np.ndarray) -> None:
    """``s`` standardised over the list into ``z``; its rank over the list's length: ``rank``."""
    z[:] = (s - s.mean()) / (s.std() + 1e-9)
    order = np.empty(len(s))
    order[np.argsort(-s, kind="stable")] = np.arange(len(s))
    rank[:] = order / max(len(s), 1)


class BPRRerank(MLPRerank):
    """:class:`MLPRerank` with an online BPR part as a feature (and source) (module doc)."""

    feature_names = BPR_FEATURES

    def __init__(self, *, bpr_factors: int = 32, bpr_negatives: int = 4,
                 bpr_lr: float = 0.05, bpr_sampling: str = "popularity", n_bpr: int = 0,
                 bpr_models: int = 1, bpr_last: int = 0, bpr_pool: int = 100_000,
                 bpr_hard: int = 0, bpr_hard_from: str = "list", bpr_hard_top: int = 20,
                 bpr_second: str | None = None, mlp_heads: int = 1, **kwargs: Any):
        if bpr_last < 0:
            raise ValueError(f"bpr_last must be >= 0, got {bpr_last}")
        self.bpr_last = bpr_last
        if bpr_second not in (None, "uniform", "popularity"):
            raise ValueError(f"bpr_second must be None, 'uniform' or 'popularity', got "
                             f"{bpr_second!r}")
        self.bpr_second = bpr_second
        # more columns (before the parent sizes its weights by the names)
        self.feature_names = (*BPR_FEATURES, *(("bpr_last",) if bpr_last else ()),
                              *(("bpr2_z", "bpr2_rank") if bpr_second else ()))
        super().__init__(**kwargs)
        if n_bpr < 0:
            raise ValueError(f"n_bpr must be >= 0, got {n_bpr}")
        if bpr_models < 1:
            raise ValueError(f"bpr_models must be >= 1, got {bpr_models}")
        self.n_bpr = n_bpr
        if bpr_hard < 0 or bpr_hard_top < 1:
            raise ValueError(f"bpr_hard must be >= 0 and bpr_hard_top >= 1, got {bpr_hard}, "
                             f"{bpr_hard_top}")
        if bpr_hard_from not in ("list", "bpr-top"):
            raise ValueError(f"bpr_hard_from must be 'list' or 'bpr-top', got {bpr_hard_from!r}")
        self.bpr_hard = bpr_hard
        self.bpr_hard_from = bpr_hard_from
        self.bpr_hard_top = bpr_hard_top
        self._hard_rng = np.random.default_rng(self.seed + 1009)
        if mlp_heads < 1:
            raise ValueError(f"mlp_heads must be >= 1, got {mlp_heads}")
        self.mlp_heads = mlp_heads
        d = self._w1.shape[0]
        head_rng = np.random.default_rng(self.seed + 31)
        # the extra heads: [w1, b1, w2], Adam moments m and v, step count
        self._heads = [{"p": [head_rng.normal(0.0, 1.0 / np.sqrt(d), (d, self.hidden)),
                              np.zeros(self.hidden), np.zeros(self.hidden)], "t": 0}
                       for _ in range(mlp_heads - 1)]
        for head in self._heads:
            head["lr"] = self.mlp_lr
            head["m"] = [np.zeros_like(a) for a in head["p"]]
            head["v"] = [np.full_like(a, 1e-8) for a in head["p"]]
        self._hard: np.ndarray | None = None  # this event's list negatives, step -> learn
        #: the list negatives BPR learned with the last event (empty: none)
        self.last_list_negatives = np.zeros(0, dtype=np.int64)
        self.bprs = [BPR(bpr_factors, n_negatives=bpr_negatives, sampling=bpr_sampling,
                         lr=bpr_lr, pool_size=bpr_pool, seed=self.seed + 7 + i)
                     for i in range(bpr_models)]
        self.bpr = self.bprs[0]
        self.second = None if bpr_second is None else BPR(
            bpr_factors, n_negatives=bpr_negatives, sampling=bpr_second, lr=bpr_lr,
            pool_size=bpr_pool, seed=self.seed + 17)
        self._bpr_scores: np.ndarray | None = None  # the user's, between the two hooks

    def parts(self) -> dict[str, object]:
        """The candidate sources by name (``rerank-knn``'s, ``bpr``, ``bpr_2``, ...)."""
        bprs = {"bpr" if i == 0 else f"bpr_{i + 1}": b for i, b in enumerate(self.bprs)}
        if self.second is not None:
            bprs["bpr_second"] = self.second
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
            if self.second is not None:
                out[:, -1] = 0.5
            return
        s = self.bpr_scores(user, rows) if scores is None else scores[rows]
        _z_and_rank(s, out[:, 0], out[:, 1])
        if self.bpr_last:
            out[:, 2] = self._last_items_affinity(user, rows)
        second = self.second
        if second is not None:
            known = rows < second.n_items
            s2 = np.zeros(len(rows))
            s2[known] = second.score_rows(user, rows[known])
            _z_and_rank(s2, out[:, -2], out[:, -1])

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

    def _scored(self, user: str, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The parent's score; with ``mlp_heads`` > 1 the network part is the heads' mean."""
        rows, feats, raw, ctx = super()._scored(user, now)
        if not self._heads:
            return rows, feats, raw, ctx
        x, h = self._forward(feats, ctx)
        first = h @ self._w2
        total = first.copy()
        for head in self._heads:
            w1, b1, w2 = head["p"]
            total += np.tanh(x @ w1 + b1) @ w2
        return rows, feats, raw - first + total / self.mlp_heads, ctx

    def _step(self, user: str, item: int, now: float) -> None:
        """The parent's listwise step, then each extra head's own one.

        Before it, with ``bpr_hard``, BPR's list negatives are drawn; after it, each extra
        head steps on ``log softmax(linear + head)[item]`` over the same list.
        """
        if self.bpr_hard or self._heads:
            rows, feats, linear, ctx = KNNRerank._scored(self, user, now)  # (cached)
            if self.bpr_hard:
                self._hard = self._list_negatives(user, item, rows)
            at = int(np.searchsorted(rows, item))
            seen = self._seen.get(user, set())
            train = bool(self._heads) and at < len(rows) and rows[at] == item and item not in seen
            if train:
                x = self._forward(feats, ctx)[0]
                masked = self._seen_mask(seen, rows) if seen else None
        super()._step(user, item, now)
        if self._heads and train:
            for head in self._heads:
                self._head_step(head, x, linear, at, masked)

    @staticmethod
    def _head_step(head: dict[str, Any], x: np.ndarray, linear: np.ndarray, at: int,
                   masked: np.ndarray | None) -> None:
        """One Adam step of an extra head on the softmax log-likelihood of row ``at``."""
        w1, b1, w2 = head["p"]
        h = np.tanh(x @ w1 + b1)
        z = linear + h @ w2
        if masked is not None:
            z[masked] = -np.inf
        p = np.exp(z - z[at])
        p /= p.sum()
        g = -p
        g[at] += 1.0
        head["t"] += 1
        t = head["t"]
        c1, c2 = 1.0 - _BETA1 ** t, 1.0 - _BETA2 ** t
        for param, m, v, gr in zip(head["p"], head["m"], head["v"],
                                   network_gradients(x, h, w2, g), strict=True):
            m *= _BETA1
            m += (1.0 - _BETA1) * gr
            v *= _BETA2
            v += (1.0 - _BETA2) * gr * gr
            param += head["lr"] * (m / c1) / (np.sqrt(v / c2) + _EPS)

    def _list_negatives(self, user: str, item: int, rows: np.ndarray) -> np.ndarray:
        """``bpr_hard`` of the user's unseen candidates other than ``item``.

        Drawn uniformly from the list (``"list"``) or from its ``bpr_hard_top`` best by BPR
        (``"bpr-top"``).
        """
        seen = self._seen.get(user, set())
        if self.bpr_hard_from == "bpr-top" and user in self.bpr._users:
            s = self.bpr_scores(user, rows)
            order = np.argsort(-s, kind="stable")
            pool = [r for r in rows[order[: self.bpr_hard_top + len(seen) + 1]].tolist()
                    if r != item and r not in seen][: self.bpr_hard_top]
        else:
            pool = rows
        if len(pool) == 0:
            return np.zeros(0, dtype=np.int64)
        draws = np.asarray(pool)[self._hard_rng.integers(0, len(pool), 3 * self.bpr_hard)]
        keep = [r for r in draws.tolist() if r != item and r not in seen][: self.bpr_hard]
        return np.array(keep, dtype=np.int64)

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """The MLP reranker's step and parts, then each BPR part learns the event."""
        self._hard = None
        super().learn_one(user, item, weight, ts)
        hard, self._hard = self._hard, None
        self.last_list_negatives = np.zeros(0, dtype=np.int64) if hard is None else hard
        for b in self.bprs:
            b.learn_one(user, item, weight, ts, negatives=hard)
        if self.second is not None:
            self.second.learn_one(user, item, weight, ts)
