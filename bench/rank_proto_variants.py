"""Scratch variants of the reranker for ``bench.rank_proto`` (issue 8, fourth round).

(a) a nonlinear listwise reranker: a 2-layer tanh MLP over the same features plus the
context one-hot, added to the crossed linear score (starts as the linear model: output
weights zero), both trained on the softmax log-likelihood of the true item, Adam or Adagrad;
(b) wider pools: item-kNN over the whole history and user-kNN as extra sources + features;
(c) ensembles: the reranker's candidate scores rank-averaged with a second scorer.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from learning.rank_knn import HistoryKNN
from learning.rank_rerank import _N_CTX, FEATURES, ListwiseRerank


class NeighbourItems:
    """User-kNN (scratch): items of the user's nearest recent users, by shared recent items.

    Each shared item counts ``1 / log2(1 + its raters)``, normalised by the neighbour's
    history length. Not erasure-safe (item tables hold user ids): a prototype only.
    """

    def __init__(self, history: int = 30, *, raters: int = 50, neighbours: int = 30):
        if min(history, raters, neighbours) < 1:
            raise ValueError("history, raters and neighbours must be >= 1")
        self.history = history
        self.raters = raters
        self.neighbours = neighbours
        self.n_items = 0
        self._raters: dict[int, deque[str]] = {}
        self._seen_by: dict[int, int] = {}
        self._hist: dict[str, deque[int]] = {}

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """Remember ``user`` among ``item``'s recent raters and ``item`` in their history."""
        if item >= self.n_items:
            self.n_items = item + 1
        hist = self._hist.setdefault(user, deque(maxlen=self.history))
        if item in hist:
            return
        hist.append(item)
        raters = self._raters.setdefault(item, deque(maxlen=self.raters))
        raters.append(user)
        self._seen_by[item] = self._seen_by.get(item, 0) + 1

    def similar(self, user: str) -> dict[str, float]:
        """The nearest recent users and their similarity to ``user``."""
        sim: dict[str, float] = {}
        for h in self._hist.get(user, ()):
            w = 1.0 / math.log2(1 + self._seen_by[h])
            for v in self._raters[h]:
                if v != user:
                    sim[v] = sim.get(v, 0.0) + w
        for v in sim:
            sim[v] /= math.sqrt(len(self._hist[v]))
        if len(sim) > self.neighbours:
            keep = sorted(sim, key=sim.__getitem__, reverse=True)[: self.neighbours]
            sim = {v: sim[v] for v in keep}
        return sim

    def score_items(self, user: str) -> np.ndarray:
        """Sum of neighbour similarities over the neighbours' recent items."""
        scores = np.zeros(self.n_items)
        for v, s in self.similar(user).items():
            rows = np.fromiter(self._hist[v], np.int64, len(self._hist[v]))
            scores[rows] += s
        return scores


class MLPRerank(ListwiseRerank):
    """Linear crossed score + a tanh MLP over [features, context one-hot]."""

    def __init__(self, hidden: int = 32, mlp_lr: float = 1e-3, optimiser: str = "adam",
                 seed: int = 0, standardise: bool = True, linear: bool = True, **kw: Any):
        super().__init__(**kw)
        rng = np.random.default_rng(seed)
        self._nf = nf = self._w.shape[1]
        d = nf + _N_CTX
        self.hidden = hidden
        self.mlp_lr = mlp_lr
        self.optimiser = optimiser
        self.standardise = standardise
        self.linear = linear
        self._p = {"w1": rng.normal(0, 1 / np.sqrt(d), (d, hidden)), "b1": np.zeros(hidden),
                   "w2": np.zeros(hidden)}
        self._m = {k: np.zeros_like(v) for k, v in self._p.items()}
        self._v = {k: np.zeros_like(v) + (1e-8 if optimiser == "adam" else 1e-6)
                   for k, v in self._p.items()}
        self._t = 0
        self._mu = np.zeros(nf)
        self._var = np.ones(nf)
        self._nstat = 0

    def _x(self, feats: np.ndarray, ctx: int) -> np.ndarray:
        f = (feats - self._mu) / np.sqrt(self._var + 1e-6) if self.standardise else feats
        x = np.zeros((len(feats), self._nf + _N_CTX))
        x[:, : self._nf] = f
        x[:, self._nf + ctx] = 1.0
        return x

    def _scored(self, user: str, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        rows, feats, raw, ctx = super()._scored(user, now)
        h = np.tanh(self._x(feats, ctx) @ self._p["w1"] + self._p["b1"])
        return rows, feats, (raw if self.linear else 0.0) + h @ self._p["w2"], ctx

    def _step(self, user: str, item: int, now: float) -> None:
        rows, feats, raw, ctx = self._scored(user, now)
        at = int(np.searchsorted(rows, item))
        seen = self._seen.get(user, set())
        if at >= len(rows) or rows[at] != item or item in seen:
            return
        z = raw.copy()
        if seen:
            z[self._seen_mask(seen, rows)] = -np.inf
        p = np.exp(z - z[at])
        p /= p.sum()
        g = -p
        g[at] += 1.0
        if self.linear:
            grad = g @ feats
            for c in (0, ctx):
                self._g2[c] += grad * grad
                self._w[c] += self.lr * grad / np.sqrt(self._g2[c])
        x = self._x(feats, ctx)
        h = np.tanh(x @ self._p["w1"] + self._p["b1"])
        dh = np.outer(g, self._p["w2"]) * (1 - h * h)
        grads = {"w2": g @ h, "w1": x.T @ dh, "b1": dh.sum(axis=0)}
        self._t += 1
        for k, gr in grads.items():
            if self.optimiser == "adam":
                self._m[k] = 0.9 * self._m[k] + 0.1 * gr
                self._v[k] = 0.999 * self._v[k] + 0.001 * gr * gr
                mh = self._m[k] / (1 - 0.9 ** self._t)
                vh = self._v[k] / (1 - 0.999 ** self._t)
                self._p[k] += self.mlp_lr * mh / (np.sqrt(vh) + 1e-8)
            else:
                self._v[k] += gr * gr
                self._p[k] += self.mlp_lr * gr / np.sqrt(self._v[k])
        if self.standardise:  # running feature moments from the lists trained on
            self._nstat += 1
            a = max(1.0 / self._nstat, 1e-3)
            self._mu += a * (feats.mean(axis=0) - self._mu)
            self._var += a * (feats.var(axis=0) - self._var)


class KNNRerank(ListwiseRerank):
    """The reranker with item-kNN (whole history) and/or user-kNN as extra sources + features.

    Extra feature columns per source: score relative to the list's best, any (> 0), raw.
    """

    def __init__(self, sources: tuple[str, ...] = ("knn",), n_extra: int = 50,
                 as_source: bool = True, knn: dict[str, Any] | None = None, **kw: Any):
        super().__init__(**kw)
        self.extra: dict[str, Any] = {}
        if "knn" in sources:
            self.extra["knn"] = HistoryKNN(**(knn or {}))
        if "knn-a1" in sources:
            self.extra["knn-a1"] = HistoryKNN(alpha=1.0)
        if "knn-a0.8" in sources:
            self.extra["knn-a0.8"] = HistoryKNN(alpha=0.8)
        if "knn-h5" in sources:
            self.extra["knn-h5"] = HistoryKNN(history=5, position_decay=0.7)
        if "uknn" in sources:
            self.extra["uknn"] = NeighbourItems()
        self.n_extra = n_extra
        self.as_source = as_source
        n_f = len(FEATURES) + 3 * len(self.extra)
        self._w = np.zeros((_N_CTX, n_f))
        self._w[0, 1] = 1.0
        self._g2 = np.full((_N_CTX, n_f), 1e-6)

    def _scored(self, user: str, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        cache = self._cache
        if cache is not None and cache[:3] == (user, self._events, now):
            rows, feats, ctx = cache[3], cache[4], cache[5]
        else:
            if self._popular is None:
                self._popular = np.concatenate([t.rows() for t in self._tops])
            mask = np.zeros(self.n_items, dtype=bool)
            mask[self._popular] = True
            dense = []
            parts = [(self.co_occurrence, self.n_personal), (self.sequence, self.n_personal)]
            parts += [(p, self.n_extra if self.as_source else 0) for p in self.extra.values()]
            for part, size in parts:
                scores = part.score_items(user)
                if size:
                    support = np.flatnonzero(scores != 0.0)
                    if len(support) > size:
                        keep = np.argpartition(-scores[support], size)
                        support = support[keep[:size]]
                    mask[support] = True
                dense.append(scores)
            rows = np.flatnonzero(mask)
            self._now = now
            base = self._features(rows, dense[0], dense[1], user)
            cols = [base]
            for scores in dense[2:]:
                s = scores[rows]
                top = s.max(initial=0.0)
                cols.append(np.stack([s / top if top > 0 else s, s > 0,
                                      np.log1p(s)], axis=1))
            feats = np.concatenate(cols, axis=1)
            ctx = self.context(user, now)
            self._cache = (user, self._events, now, rows, feats, ctx)
        return rows, feats, feats @ self.weights(ctx), ctx

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        super().learn_one(user, item, weight, ts)
        for part in self.extra.values():
            part.learn_one(user, item, weight, ts)


class KNNMLPRerank(MLPRerank, KNNRerank):
    """The MLP reranker over the kNN reranker's features and candidates."""


def _rank_average(values: np.ndarray, other: np.ndarray, share: float) -> np.ndarray:
    def ranks(v: np.ndarray) -> np.ndarray:
        out = np.empty(len(v))
        out[np.argsort(-v, kind="stable")] = np.arange(len(v))
        return out
    return -((1 - share) * ranks(values) + share * ranks(other))


class Ensemble(ListwiseRerank):
    """The reranker's candidate scores rank-averaged with a second scorer over its candidates."""

    def __init__(self, second: Callable[[], Any], share: float = 0.3, **kw: Any):
        super().__init__(**kw)
        self.second = second()
        self.share = share

    def _scored(self, user: str, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        return super()._scored(user, now)

    def candidate_scores(self, user: str, now: float | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        rows, values = super().candidate_scores(user, now)
        if len(rows) == 0:
            return rows, values
        other = self.second.score_items(user)[rows]
        mixed = _rank_average(values, other, self.share)
        return rows, mixed - mixed.min() + 2.0

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        super().learn_one(user, item, weight, ts)
        self.second.learn_one(user, item, weight, ts)


VARIANTS: dict[str, Callable[[], Any]] = {
    "mlp32-adam1e-3": lambda: MLPRerank(32, 1e-3, "adam"),
    "mlp32-adam3e-3": lambda: MLPRerank(32, 3e-3, "adam"),
    "mlp32-adagrad0.05": lambda: MLPRerank(32, 0.05, "adagrad"),
    "mlp32-adam1e-3-nolinear": lambda: MLPRerank(32, 1e-3, "adam", linear=False),
    "mlp64-adam1e-3": lambda: MLPRerank(64, 1e-3, "adam"),
    "knn-src": lambda: KNNRerank(("knn",)),
    "knn-feat": lambda: KNNRerank(("knn",), as_source=False),
    "uknn-src": lambda: KNNRerank(("uknn",)),
    "knn+uknn-src": lambda: KNNRerank(("knn", "uknn")),
    "knn-src100": lambda: KNNRerank(("knn",), n_extra=100),
    "knn-src25": lambda: KNNRerank(("knn",), n_extra=25),
    "knn-h20": lambda: KNNRerank(("knn",), knn={"history": 20}),
    "knn-h400": lambda: KNNRerank(("knn",), knn={"history": 400}),
    "knn-pos1": lambda: KNNRerank(("knn",), knn={"position_decay": 1.0}),
    "knn-pos0.9": lambda: KNNRerank(("knn",), knn={"position_decay": 0.9}),
    "knn-nodecay": lambda: KNNRerank(("knn",), knn={"decay": 1.0}),
    "knn-decay0.9995": lambda: KNNRerank(("knn",), knn={"decay": 0.9995}),
    "knn-mlp32-adam1e-3": lambda: KNNMLPRerank(32, 1e-3, "adam", sources=("knn",)),
    "knn-mlp32-adagrad0.05": lambda: KNNMLPRerank(32, 0.05, "adagrad", sources=("knn",)),
    "knn+knn-a1": lambda: KNNRerank(("knn", "knn-a1")),
    "knn-a0.8": lambda: KNNRerank(("knn-a0.8",)),
    "knn+knn-h5": lambda: KNNRerank(("knn", "knn-h5")),
    "ens-knn0.3": lambda: Ensemble(HistoryKNN, 0.3),
    "ens-uknn0.3": lambda: Ensemble(NeighbourItems, 0.3),
}
