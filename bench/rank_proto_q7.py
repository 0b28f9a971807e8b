"""Scratch variants (issue 8, round 6, rankq7): more sources / features for ``rerank-mlp``.

Each is :class:`~learning.rank_rerank_mlp.MLPRerank` with extra feature columns after the
29 of ``rerank-knn``: ``recent`` (the kNN score from the user's last ``m`` items only,
relative to the list's best, and whether it is non-zero), ``bpr`` (an online BPR's score,
standardised within the list, and its rank share in the list; optionally its top items as
candidates). Chosen on events 0-50k only (``bench.rank_proto --limit 50000``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from learning.rank_bpr import BPR
from learning.rank_rerank import _N_CTX, FEATURES
from learning.rank_rerank_knn import KNN_FEATURES
from learning.rank_rerank_mlp import MLPRerank


class PlusRerank(MLPRerank):
    """MLPRerank + optional recent-kNN and BPR columns (scratch)."""

    def __init__(self, *, recent: int = 0, bpr: int = 0, n_bpr: int = 0, bpr_sampling="uniform",
                 bpr_kwargs: dict | None = None,
                 unseen: int = 0, unseen_cols: tuple[int, ...] = (1,), **kwargs: Any):
        self.unseen = unseen
        self.unseen_cols = unseen_cols
        self._extra = (2 if recent else 0) + (2 if bpr else 0)
        super().__init__(**kwargs)
        self.recent = recent
        self.bpr_part = (BPR(bpr, sampling=bpr_sampling, seed=7, **(bpr_kwargs or {}))
                         if bpr else None)
        self.n_bpr = n_bpr
        nf = len(KNN_FEATURES) + self._extra
        d = nf + _N_CTX
        rng = np.random.default_rng(self.seed)
        self._w = np.zeros((_N_CTX, nf))
        self._w[0, 1] = 1.0
        self._g2 = np.full((_N_CTX, nf), 1e-6)
        self._w1 = rng.normal(0.0, 1.0 / np.sqrt(d), (d, self.hidden))
        self._adam_m = [np.zeros_like(p) for p in (self._w1, self._b1, self._w2)]
        self._adam_v = [np.full_like(p, 1e-8) for p in (self._w1, self._b1, self._w2)]
        self._mu = np.zeros(nf)
        self._var = np.ones(nf)

    def parts(self) -> dict[str, object]:
        out = super().parts()
        if self.bpr_part is not None:
            out["bpr"] = self.bpr_part
        return out

    def _base_scored(self, user: str, now: float):
        cache = self._cache
        if cache is not None and cache[:3] == (user, self._events, now):
            rows, feats, ctx = cache[3], cache[4], cache[5]
            return rows, feats, feats @ self.weights(ctx), ctx
        if self._popular is None:
            self._popular = np.concatenate([t.rows() for t in self._tops])
        mask = np.zeros(self.n_items, dtype=bool)
        mask[self._popular] = True
        dense = []
        sources = [(self.co_occurrence, self.n_personal), (self.sequence, self.n_personal),
                   (self.knn, self.n_knn)]
        for part, size in sources:
            scores = part.score_items(user)
            support = np.flatnonzero(scores != 0.0)
            if len(support) > size:
                keep = np.argpartition(-scores[support], size)
                support = support[keep[:size]]
            mask[support] = True
            dense.append(scores)
        bscores = None
        if self.bpr_part is not None:
            bscores = self.bpr_part.score_items(user)
            if len(bscores) < self.n_items:
                bscores = np.concatenate([bscores, np.zeros(self.n_items - len(bscores))])
            if self.n_bpr and user in self.bpr_part._users and self.n_items > self.n_bpr:
                top = np.argpartition(-bscores, self.n_bpr)[: self.n_bpr]
                mask[top] = True
        if self.unseen:
            seen = self._seen.get(user)
            if seen and len(seen) > 10:
                marked = np.fromiter(seen, np.int64, len(seen))
                for j in self.unseen_cols:
                    col = self._counts[: self.n_items, j].copy()
                    col[marked] = -1.0
                    if self.n_items > self.unseen:
                        top = np.argpartition(-col, self.unseen)[: self.unseen]
                        mask[top] = True
        rows = np.flatnonzero(mask)
        self._now = now
        nk = len(KNN_FEATURES)
        feats = np.empty((len(rows), nk + self._extra))
        feats[:, : len(FEATURES)] = self._features(rows, dense[0], dense[1], user)
        knn = dense[2][rows]
        top = knn.max(initial=0.0)
        feats[:, nk - 3] = knn / top if top > 0 else 0.0
        feats[:, nk - 2] = knn > 0
        np.log1p(knn, out=feats[:, nk - 1])
        c = nk
        if self.recent:
            h = self.knn.history
            self.knn.history = self.recent
            try:
                r = self.knn.score_items(user)[rows]
            finally:
                self.knn.history = h
            t = r.max(initial=0.0)
            feats[:, c] = r / t if t > 0 else 0.0
            feats[:, c + 1] = r > 0
            c += 2
        if bscores is not None:
            b = bscores[rows]
            if user in self.bpr_part._users:
                feats[:, c] = (b - b.mean()) / (b.std() + 1e-9)
                order = np.empty(len(rows))
                order[np.argsort(-b, kind="stable")] = np.arange(len(rows))
                feats[:, c + 1] = order / max(len(rows), 1)
            else:
                feats[:, c] = 0.0
                feats[:, c + 1] = 0.5
            c += 2
        ctx = self.context(user, now)
        self._cache = (user, self._events, now, rows, feats, ctx)
        return rows, feats, feats @ self.weights(ctx), ctx

    def _scored(self, user, now):
        rows, feats, raw, ctx = self._base_scored(user, now)
        _, h = self._forward(feats, ctx)
        return rows, feats, raw + h @ self._w2, ctx

    def _step(self, user, item, now):
        # same as MLPRerank._step with the base scores of _base_scored
        import learning.rank_rerank_mlp as m
        rows, feats, linear, ctx = self._base_scored(user, now)
        at = int(np.searchsorted(rows, item))
        seen = self._seen.get(user, set())
        if at >= len(rows) or rows[at] != item or item in seen:
            return
        x, h = self._forward(feats, ctx)
        g = self._softmax_step(rows, feats, linear + h @ self._w2, at, seen, ctx)
        grads = m.network_gradients(x, h, self._w2, g)
        self._t += 1
        c1, c2 = 1.0 - m._BETA1 ** self._t, 1.0 - m._BETA2 ** self._t
        for param, mm, v, gr in zip((self._w1, self._b1, self._w2), self._adam_m, self._adam_v,
                                    grads, strict=True):
            mm *= m._BETA1
            mm += (1.0 - m._BETA1) * gr
            v *= m._BETA2
            v += (1.0 - m._BETA2) * gr * gr
            param += self.mlp_lr * (mm / c1) / (np.sqrt(v / c2) + m._EPS)
        self._nstat += 1
        a = max(1.0 / self._nstat, 1e-3)
        self._mu += a * (feats.mean(axis=0) - self._mu)
        self._var += a * (feats.var(axis=0) - self._var)
        self._cache = None
        self._hidden_cache = None

    def learn_one(self, user, item, weight=1.0, ts=0.0):
        super().learn_one(user, item, weight, ts)
        if self.bpr_part is not None:
            self.bpr_part.learn_one(user, item, weight, ts)


VARIANTS: dict[str, Callable[[], Any]] = {
    "q7-base": lambda: PlusRerank(),
    "q7-recent5": lambda: PlusRerank(recent=5),
    "q7-recent2": lambda: PlusRerank(recent=2),
    "q7-bpr32": lambda: PlusRerank(bpr=32),
    "q7-bpr32-pop": lambda: PlusRerank(bpr=32, bpr_sampling="popularity"),
    "q7-bpr32-c30": lambda: PlusRerank(bpr=32, n_bpr=30),
    "q7-knn100": lambda: PlusRerank(n_knn=100),
    "q7-h128": lambda: PlusRerank(hidden=128),
    "q7-pop200": lambda: PlusRerank(n_popular=200),
    "q7-bprpop-c30": lambda: PlusRerank(bpr=32, bpr_sampling="popularity", n_bpr=30),
    "q7-bprpop64": lambda: PlusRerank(bpr=64, bpr_sampling="popularity"),
    "q7-bprpop-neg8": lambda: PlusRerank(bpr=32, bpr_sampling="popularity",
                                         bpr_kwargs={"n_negatives": 8}),
    "q7-bprpop-lr.1": lambda: PlusRerank(bpr=32, bpr_sampling="popularity",
                                         bpr_kwargs={"lr": 0.1}),
    "q7-bprpop-lr.02": lambda: PlusRerank(bpr=32, bpr_sampling="popularity",
                                          bpr_kwargs={"lr": 0.02}),
    "q7-bprpop-u100-k100": lambda: PlusRerank(bpr=32, bpr_sampling="popularity", unseen=100,
                                              n_knn=100),
    "q7-unseen100": lambda: PlusRerank(unseen=100),
    "q7-unseen100-c12": lambda: PlusRerank(unseen=100, unseen_cols=(1, 2)),
    "q7-unseen50-all": lambda: PlusRerank(unseen=50, unseen_cols=(0, 1, 2, 3, 4)),
}
