"""The kNN reranker plus a small MLP: a nonlinear listwise score over the same candidates.

:class:`MLPRerank` is :class:`~learning.rank_rerank_knn.KNNRerank` (same sources, the same
29 feature columns, the same crossed linear score ``f . (w + w_ctx)`` learned by Adagrad)
plus a one-hidden-layer tanh network over ``[standardised features, context one-hot]``
whose output is added to the linear score::

    score_i = f_i . (w + w_ctx) + w2 . tanh(W1 x_i + b1)

``w2`` starts at zero, so the model starts exactly as the kNN reranker (decayed
popularity x0.999); ``W1`` is drawn from ``N(0, 1 / d)`` with ``seed``. Each listwise step
(the true item among the user's unseen candidates) takes the gradient ``g = onehot - p`` of
``log softmax(score)[item]`` once and uses it for both: an Adagrad step on the linear
weights and an Adam step (``mlp_lr``) on the network, forward and backward vectorised in
numpy over the candidate list. The features are standardised by running means and
variances of the lists trained on (rate ``max(1 / n, 1e-3)``), updated after each step.

Everything the network learns is global (no per-user entry), so erasure is the parent's:
forgetting a user drops their history, context and kNN/co-occurrence state, and their
next list is a cold user's. The network, its Adam moments and the feature moments are
plain attributes: they ride in the pickled snapshot.

>>> r = MLPRerank(n_popular=3, n_personal=3, n_knn=3, hidden=4, seed=1)
>>> stream = [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 2), ("d", 0), ("d", 2),
...           ("e", 1), ("e", 0)]
>>> for t, (user, item) in enumerate(stream):
...     r.learn_one(user, item, ts=float(t))
>>> r.steps, bool(np.abs(r.network()["w2"]).sum() > 0)  # the network left its zero start
(3, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learning.rank_rerank import _N_CTX
from learning.rank_rerank_knn import KNNRerank

__all__ = ["MLPRerank", "network_gradients"]

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def network_gradients(x: np.ndarray, h: np.ndarray, w2: np.ndarray, g: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``sum_i g_i * (w2 . tanh(x_i W1 + b1))`` in ``W1``, ``b1`` and ``w2``.

    ``x``: n x d inputs, ``h = tanh(x W1 + b1)``: n x hidden, ``g``: the n score gradients.

    >>> x, h, g = np.ones((2, 3)), np.zeros((2, 4)), np.array([1.0, -1.0])
    >>> [a.shape for a in network_gradients(x, h, np.ones(4), g)]
    [(3, 4), (4,), (4,)]
    """
    dh = np.outer(g, w2)
    dh *= 1.0 - h * h
    return x.T @ dh, dh.sum(axis=0), g @ h


class MLPRerank(KNNRerank):
    """:class:`KNNRerank` plus a tanh MLP added to its linear score (module doc)."""

    def __init__(self, *, hidden: int = 64, mlp_lr: float = 1e-3, seed: int = 0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        if not mlp_lr > 0:
            raise ValueError(f"mlp_lr must be > 0, got {mlp_lr}")
        self.hidden = hidden
        self.mlp_lr = mlp_lr
        self.seed = seed
        nf = len(self.feature_names)
        d = nf + _N_CTX
        rng = np.random.default_rng(seed)
        self._w1 = rng.normal(0.0, 1.0 / np.sqrt(d), (d, hidden))
        self._b1 = np.zeros(hidden)
        self._w2 = np.zeros(hidden)
        self._adam_m = [np.zeros_like(p) for p in (self._w1, self._b1, self._w2)]
        self._adam_v = [np.full_like(p, 1e-8) for p in (self._w1, self._b1, self._w2)]
        self._t = 0
        self._mu = np.zeros(nf)
        self._var = np.ones(nf)
        self._nstat = 0
        # (features array, steps, inputs, hidden activations) of the last forward pass
        self._hidden_cache: tuple[np.ndarray, int, np.ndarray, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, object]:
        """The parent's learned state plus the network; the forward-pass cache is rebuilt."""
        return super().__getstate__() | {"_hidden_cache": None}

    @property
    def steps(self) -> int:
        """How many listwise steps the network has taken."""
        return self._t

    def network(self) -> dict[str, np.ndarray]:
        """Copies of the network's weights (``w1``: inputs x hidden, ``b1``, ``w2``)."""
        return {"w1": self._w1.copy(), "b1": self._b1.copy(), "w2": self._w2.copy()}

    def _forward(self, feats: np.ndarray, ctx: int) -> tuple[np.ndarray, np.ndarray]:
        """Network inputs and hidden activations for one candidate list (cached per list)."""
        cache = self._hidden_cache
        if cache is not None and cache[0] is feats and cache[1] == self._t:
            return cache[2], cache[3]
        nf = len(self._mu)
        x = np.zeros((len(feats), nf + _N_CTX))
        np.subtract(feats, self._mu, out=x[:, :nf])
        x[:, :nf] /= np.sqrt(self._var + 1e-6)
        x[:, nf + ctx] = 1.0
        h = x @ self._w1
        h += self._b1
        np.tanh(h, out=h)
        self._hidden_cache = (feats, self._t, x, h)
        return x, h

    def _scored(self, user: str, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The parent's candidates and features; the score adds the network's output."""
        rows, feats, raw, ctx = super()._scored(user, now)
        _, h = self._forward(feats, ctx)
        return rows, feats, raw + h @ self._w2, ctx

    def _step(self, user: str, item: int, now: float) -> None:
        """One joint step on ``log softmax(score)[item]``: Adagrad (linear), Adam (network)."""
        rows, feats, linear, ctx = super()._scored(user, now)  # no forward pass if no step
        at = int(np.searchsorted(rows, item))
        seen = self._seen.get(user, set())
        if at >= len(rows) or rows[at] != item or item in seen:
            return
        x, h = self._forward(feats, ctx)
        g = self._softmax_step(rows, feats, linear + h @ self._w2, at, seen, ctx)
        grads = network_gradients(x, h, self._w2, g)
        self._t += 1
        c1, c2 = 1.0 - _BETA1 ** self._t, 1.0 - _BETA2 ** self._t
        for param, m, v, gr in zip((self._w1, self._b1, self._w2), self._adam_m, self._adam_v,
                                   grads, strict=True):
            m *= _BETA1
            m += (1.0 - _BETA1) * gr
            v *= _BETA2
            v += (1.0 - _BETA2) * gr * gr
            param += self.mlp_lr * (m / c1) / (np.sqrt(v / c2) + _EPS)
        self._nstat += 1  # running feature moments of the lists trained on
        a = max(1.0 / self._nstat, 1e-3)
        self._mu += a * (feats.mean(axis=0) - self._mu)
        self._var += a * (feats.var(axis=0) - self._var)
        self._cache = None
        self._hidden_cache = None
