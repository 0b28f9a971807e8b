"""Serving the deep model per event: a numpy view of it, a user-side fold-in, blend weights.

Replayed in time order, rating streams come in bursts (a user rates dozens of items in one
sitting). A deep model retrained between rounds cannot follow a burst; River's online
model follows it but learns interactions only weakly. :class:`DeepView` freezes the deep
model's item side and global terms as numpy arrays; :class:`FoldIn` then folds every new
event into the *user* side (bias and vector, by SGD) against those item factors, so the
deep model follows the burst too; :class:`BlendWeights` mixes it with River by recent
error.

>>> from learning.torch_models import DeepRecommender
>>> view = DeepView.of(DeepRecommender(n_factors=4, seed=1))
>>> fold = FoldIn(lr=0.1)
>>> before = view.predict("new-user", "new-item", fold)
>>> errors = [fold.update(view, "new-user", "new-item", 4.0) for _ in range(20)]
>>> abs(view.predict("new-user", "new-item", fold) - 4.0) < abs(before - 4.0)
True
"""

from __future__ import annotations

import math

import numpy as np
import torch

from learning.models import clip
from learning.torch_models import DeepRecommender, TwoTower

__all__ = ["BlendWeights", "DeepView", "FoldIn"]


class DeepView:
    """An immutable CPU copy of a :class:`DeepRecommender`'s serving terms.

    ``predict = mu + b_u + b_i + <p_u, q_i>`` where for a two-tower model ``p_u``/``q_i``
    are the tower outputs (precomputed once here, so serving is a dot product). Unknown
    ids contribute nothing (bias 0, vector 0).
    """

    def __init__(self, mu: float, users: dict[str, int], items: dict[str, int],
                 user_vecs: np.ndarray, user_bias: np.ndarray, item_vecs: np.ndarray,
                 item_bias: np.ndarray, clip: tuple[float, float] | None):
        self.mu = mu
        self.users = users
        self.items = items
        self.clip = clip
        self.dim = int(item_vecs.shape[1])
        self._pack(user_vecs, user_bias, item_vecs, item_bias)

    def _pack(self, user_vecs: np.ndarray, user_bias: np.ndarray, item_vecs: np.ndarray,
              item_bias: np.ndarray) -> None:
        # one (rows, dim + 1) float64 matrix per side, vectors then bias; ``user_vecs`` ...
        # are views of it (an erasure that zeroes them zeroes it), and the compiled deep
        # side (learning/deep_kernel.py) takes the two matrices instead of four arrays
        d = self.dim
        self.user_pack = np.empty((len(user_bias), d + 1))
        self.item_pack = np.empty((len(item_bias), d + 1))
        self.user_pack[:, :d], self.user_pack[:, d] = user_vecs, user_bias
        self.item_pack[:, :d], self.item_pack[:, d] = item_vecs, item_bias
        self.user_vecs, self.user_bias = self.user_pack[:, :d], self.user_pack[:, d]
        self.item_vecs, self.item_bias = self.item_pack[:, :d], self.item_pack[:, d]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("user_vecs", "user_bias", "item_vecs", "item_bias"):
            del state[key]  # views of the packs
        return state

    def __setstate__(self, state: dict) -> None:
        if "user_pack" in state:
            d = state["dim"]
            packs = state["user_pack"], state["item_pack"]
            state.update(user_vecs=packs[0][:, :d], user_bias=packs[0][:, d],
                         item_vecs=packs[1][:, :d], item_bias=packs[1][:, d])
            self.__dict__.update(state)
        else:  # views pickled before the packs: four arrays
            arrays = [state.pop(k) for k in ("user_vecs", "user_bias", "item_vecs", "item_bias")]
            self.__dict__.update(state)
            self._pack(*arrays)

    @classmethod
    @torch.no_grad()
    def of(cls, rec: DeepRecommender) -> DeepView:
        """Snapshot ``rec`` (it may keep training afterwards; the view does not change)."""
        module = rec.module
        ut = module.user_table.detach().float()
        it = module.item_table.detach().float()
        if isinstance(module, TwoTower):
            scale = 1.0 / math.sqrt(module.out_dim)
            uv = module.user_tower(ut[:, :-1]) * scale
            iv = module.item_tower(it[:, :-1])
        else:
            uv, iv = ut[:, :-1], it[:, :-1]

        def index(table_ids: list[str | None]) -> dict[str, int]:
            return {key: row for row, key in enumerate(table_ids) if key is not None}

        return cls(float(module.global_bias.detach().cpu()),
                   index(rec.users.snapshot()["ids"]), index(rec.items.snapshot()["ids"]),
                   uv.cpu().numpy().astype(np.float64), ut[:, -1].cpu().numpy().astype(np.float64),
                   iv.cpu().numpy().astype(np.float64), it[:, -1].cpu().numpy().astype(np.float64),
                   rec.clip)

    def item_terms(self, item: str) -> tuple[float, np.ndarray | None]:
        """``(b_i, q_i)`` of ``item``; ``(0, None)`` when the model never saw it."""
        row = self.items.get(item)
        if row is None:
            return 0.0, None
        return float(self.item_bias[row]), self.item_vecs[row]

    def interaction(self, user: str, item: str) -> float:
        """``<p_u, q_i>`` (0 unless the view knows both)."""
        row, col = self.users.get(user), self.items.get(item)
        if row is None or col is None:
            return 0.0
        return float(self.user_vecs[row] @ self.item_vecs[col])

    def raw(self, user: str, item: str) -> tuple[float, np.ndarray | None]:
        """``(mu + b_u + b_i + <p_u, q_i>, q_i)`` unclipped (``q_i`` None for an unknown item)."""
        b_i, q_i = self.item_terms(item)
        row = self.users.get(user)
        y = self.mu + b_i
        if row is not None:
            y += float(self.user_bias[row])
            if q_i is not None:
                y += float(self.user_vecs[row] @ q_i)
        return y, q_i

    def predict(self, user: str, item: str, fold: FoldIn | None = None) -> float:
        """The deep prediction, with ``fold``'s per-user corrections when given."""
        b_i, q_i = self.item_terms(item)
        row = self.users.get(user)
        y = self.mu + b_i + (float(self.user_bias[row]) if row is not None else 0.0)
        if q_i is not None and row is not None:
            y += float(self.user_vecs[row] @ q_i)
        if fold is not None:
            y += fold.correction(user, q_i)
        return clip(y, self.clip)


class FoldIn:
    """Per-user corrections (bias and vector) learned by SGD against frozen item factors.

    Bounded: at most ``max_users`` users are kept (the least recently updated go first).
    Reset when a new deep version arrives, which has learned those events itself.
    """

    def __init__(self, lr: float = 0.05, l2: float = 0.02, max_users: int = 1_000_000):
        self.lr = lr
        self.l2 = l2
        self.max_users = max_users
        self._terms: dict[str, tuple[float, np.ndarray | None]] = {}

    def correction(self, user: str, q_i: np.ndarray | None) -> float:
        """The correction for ``user`` on an item with factors ``q_i``."""
        terms = self._terms.get(user)
        if terms is None:
            return 0.0
        bias, vec = terms
        return bias + (float(vec @ q_i) if vec is not None and q_i is not None else 0.0)

    def update(self, view: DeepView, user: str, item: str, value: float) -> float:
        """One SGD step on ``(user, item, value)``; return the error before the step."""
        _, q_i = view.item_terms(item)
        err = value - view.predict(user, item, self)
        bias, vec = self._terms.pop(user, (0.0, None))
        bias += self.lr * (err - self.l2 * bias)
        if q_i is not None:
            vec = np.zeros(view.dim) if vec is None else vec
            vec = vec + self.lr * (err * q_i - self.l2 * vec)
        self._terms[user] = (bias, vec)  # re-insert: dict order is recency
        if len(self._terms) > self.max_users:
            del self._terms[next(iter(self._terms))]
        return err

    def clear(self) -> None:
        """Forget every correction."""
        self._terms.clear()

    def __len__(self) -> int:
        return len(self._terms)


class BlendWeights:
    """The recent MSE-optimal convex mix of two predictions, tracked online.

    With ``d = p_a - p_b`` the blend ``p_b + w * d`` has the least squared error over the
    recent window at ``w = E[(y - p_b) d] / E[d^2]`` (clipped to [0, 1]); both moments are
    exponential moving averages over about ``window`` events. Unlike inverse-error
    weights this never does much worse than the better component, even when the two err
    together.

    >>> bw = BlendWeights(window=50)
    >>> for k in range(500):
    ...     y = float(k % 5)
    ...     bw.update(y, y + 0.1, y + (1.0 if k % 2 else -1.0))
    >>> round(bw.weight, 2)
    0.99
    """

    def __init__(self, window: int = 500, prior: float = 0.5):
        if window < 1 or not 0.0 <= prior <= 1.0:
            raise ValueError("window must be >= 1 and prior in [0, 1]")
        self.window = window
        self.prior = prior
        self._cross = 0.0
        self._var = 0.0
        self._n = 0

    @property
    def weight(self) -> float:
        """Weight of the first prediction (the second gets ``1 - weight``)."""
        if self._n == 0 or self._var <= 1e-12:
            return self.prior
        w = self._cross / self._var
        return 1.0 if w > 1.0 else w if w > 0.0 else 0.0  # clipped to [0, 1] (NaN: 0)

    def blend(self, p_a: float, p_b: float) -> float:
        """The mixed prediction."""
        return p_b + self.weight * (p_a - p_b)

    def update(self, y: float, p_a: float, p_b: float) -> None:
        """Fold one observation in (call after :meth:`blend` was used for it)."""
        d = p_a - p_b
        n = self._n = self._n + 1
        alpha = 1.0 / n if n < self.window else 1.0 / self.window  # max(1/n, 1/window)
        self._cross += alpha * ((y - p_b) * d - self._cross)
        self._var += alpha * (d * d - self._var)
