"""PyTorch recommenders (the slow learner) with growable embedding tables.

Each side (users, items) has one table of ``n_factors + 1`` columns: the factors and, in
the last column, the bias, so a minibatch costs one gather (and one sparse gradient) per
side. Rows map to ids through :class:`~learning.idtable.IdTable`; tables grow in place
(:meth:`EmbeddingModel.grow`) and reused rows are re-drawn (:meth:`EmbeddingModel.reset_rows`)
from a generator seeded by ``(seed, draw count)``, so growth is the same on every run and
every device. :class:`DeepRecommender` bundles a module with its two id tables.

>>> rec = DeepRecommender("mf", n_factors=4, seed=1)
>>> rec.users.lookup(["u1"], now=0.0), rec.items.lookup(["i1"], now=0.0)
(array([0]), array([0]))
>>> rec.predict_one("u1", "i1") == rec.predict_one("u1", "unknown item")
False
>>> rec.predict_one("nobody", "nothing")  # unknown ids fall back to the global bias
0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learning.errors import ConfigurationError
from learning.idtable import IdTable

__all__ = ["MODULE_KINDS", "DeepRecommender", "EmbeddingModel", "TorchMF", "TwoTower"]


class EmbeddingModel(nn.Module):
    """Base: global bias plus user/item tables ``[factors | bias]``; subclasses interact.

    ``forward(user_rows, item_rows)`` returns predictions; :meth:`fit_terms` also returns the
    per-sample squared norm of the rows used (for L2 on touched rows only).
    """

    def __init__(self, n_users: int, n_items: int, n_factors: int = 32,
                 init_std: float = 0.1, seed: int = 0):
        super().__init__()
        if min(n_users, n_items, n_factors) < 1 or init_std < 0:
            raise ConfigurationError("need n_users, n_items, n_factors >= 1 and init_std >= 0")
        self.n_factors = n_factors
        self.init_std = init_std
        self.seed = seed
        self.draws = 0  # learned state: how many seeded draws were made (for growth)
        self.global_bias = nn.Parameter(torch.zeros(()))
        self.user_table = nn.Parameter(self._draw(n_users))
        self.item_table = nn.Parameter(self._draw(n_items))

    @property
    def n_users(self) -> int:
        """Rows in the user table (capacity)."""
        return int(self.user_table.shape[0])

    @property
    def n_items(self) -> int:
        """Rows in the item table (capacity)."""
        return int(self.item_table.shape[0])

    def _generator(self) -> torch.Generator:
        self.draws += 1
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.draws) % 2**63)

    def _draw(self, n: int) -> Tensor:
        rows = torch.randn(n, self.n_factors + 1, generator=self._generator()) * self.init_std
        rows[:, -1] = 0.0
        return rows

    @torch.no_grad()
    def grow(self, n_users: int, n_items: int) -> None:
        """Enlarge the tables in place to at least ``n_users`` / ``n_items`` rows.

        Existing rows and the ``Parameter`` objects are kept (only their data is replaced),
        so an optimizer still holds them; its per-row state must be padded by the caller.
        """
        for param, n in ((self.user_table, n_users), (self.item_table, n_items)):
            if n > param.shape[0]:
                extra = self._draw(n - param.shape[0]).to(param.device, param.dtype)
                param.data = torch.cat([param.data, extra])

    @torch.no_grad()
    def reset_rows(self, user_rows: Sequence[int] | np.ndarray | None = None,
                   item_rows: Sequence[int] | np.ndarray | None = None) -> None:
        """Re-draw the given rows (reused for new ids) as for a brand-new id."""
        for param, rows in ((self.user_table, user_rows), (self.item_table, item_rows)):
            if rows is not None and len(rows):
                idx = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=param.device)
                param[idx] = self._draw(len(idx)).to(param.device, param.dtype)

    def interact(self, user_factors: Tensor, item_factors: Tensor) -> Tensor:
        """The user-item interaction term, one value per row."""
        raise NotImplementedError

    def user_repr(self, user_factors: Tensor) -> Tensor:
        """The user side of the interaction (all items then score as one matrix product).

        ``interact(p, q) == (user_repr(p) * item_repr(q)).sum(-1)``.
        """
        return user_factors

    def item_repr(self, item_factors: Tensor) -> Tensor:
        """The item side of the interaction (see :meth:`user_repr`)."""
        return item_factors

    def fit_terms(self, user_rows: Tensor, item_rows: Tensor, *,
                  sparse: bool = False) -> tuple[Tensor, Tensor]:
        """Predictions and per-sample squared L2 norm of the gathered rows (for training).

        ``sparse=True`` makes the table gradients sparse (for ``SparseAdam`` / ``Adagrad``).
        """
        u = F.embedding(user_rows, self.user_table, sparse=sparse)
        i = F.embedding(item_rows, self.item_table, sparse=sparse)
        return self.row_terms(u, i)

    def row_terms(self, u: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`fit_terms` of already gathered table rows ``u`` and ``i`` (bias last)."""
        inter = self.interact(u[:, :-1], i[:, :-1]).float()
        pred = self.global_bias + u[:, -1] + i[:, -1] + inter
        return pred, u.square().sum(-1) + i.square().sum(-1)

    def forward(self, user_rows: Tensor, item_rows: Tensor) -> Tensor:
        """Predictions for rows (all rows must be valid, i.e. >= 0)."""
        return self.fit_terms(user_rows, item_rows)[0]

    @torch.no_grad()
    def predict_rows(self, user_rows: Tensor, item_rows: Tensor) -> Tensor:
        """Predictions where a row of -1 (unknown id) contributes neither bias nor factors."""
        ku, ki = user_rows >= 0, item_rows >= 0
        u = F.embedding(user_rows.clamp(min=0), self.user_table)
        i = F.embedding(item_rows.clamp(min=0), self.item_table)
        inter = self.interact(u[:, :-1], i[:, :-1]).float()
        zero = torch.zeros((), device=u.device, dtype=u.dtype)
        return (self.global_bias + torch.where(ku, u[:, -1], zero)
                + torch.where(ki, i[:, -1], zero) + torch.where(ku & ki, inter, zero))


class TorchMF(EmbeddingModel):
    """Biased matrix factorisation: ``mu + b_u + b_i + <p_u, q_i>``.

    >>> m = TorchMF(3, 2, n_factors=4, seed=0)
    >>> m(torch.tensor([0, 2]), torch.tensor([1, 1])).shape
    torch.Size([2])
    """

    def interact(self, user_factors: Tensor, item_factors: Tensor) -> Tensor:
        """Dot product of the factors."""
        return (user_factors * item_factors).sum(-1)


class TwoTower(EmbeddingModel):
    """NCF-style two-tower: each side's embedding goes through its own MLP, then a dot product.

    ``mu + b_u + b_i + <f(p_u), g(q_i)>`` with ``f``, ``g`` two-layer ReLU MLPs of width
    ``hidden`` and output ``out_dim``. Item towers can be precomputed for serving.

    >>> m = TwoTower(3, 2, n_factors=4, hidden=8, out_dim=4, seed=0)
    >>> m(torch.tensor([0, 2]), torch.tensor([1, 1])).shape
    torch.Size([2])
    """

    def __init__(self, n_users: int, n_items: int, n_factors: int = 32, init_std: float = 0.1,
                 seed: int = 0, hidden: int = 64, out_dim: int = 32):
        super().__init__(n_users, n_items, n_factors, init_std, seed)
        self.hidden = hidden
        self.out_dim = out_dim
        self.user_tower = self._tower()
        self.item_tower = self._tower()

    def _tower(self) -> nn.Sequential:
        tower = nn.Sequential(nn.Linear(self.n_factors, self.hidden), nn.ReLU(),
                              nn.Linear(self.hidden, self.out_dim))
        gen = self._generator()
        for layer in tower:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
                nn.init.uniform_(layer.bias, -0.01, 0.01, generator=gen)
        return tower

    def interact(self, user_factors: Tensor, item_factors: Tensor) -> Tensor:
        """Dot product of the tower outputs, scaled by ``1/sqrt(out_dim)``."""
        dot = (self.user_tower(user_factors) * self.item_tower(item_factors)).sum(-1)
        return dot / math.sqrt(self.out_dim)

    def user_repr(self, user_factors: Tensor) -> Tensor:
        """The user tower's output."""
        return self.user_tower(user_factors)

    def item_repr(self, item_factors: Tensor) -> Tensor:
        """The item tower's output, scaled by ``1/sqrt(out_dim)``."""
        return self.item_tower(item_factors) / math.sqrt(self.out_dim)


MODULE_KINDS: tuple[str, ...] = ("mf", "two_tower")


class DeepRecommender:
    """A torch module plus its user and item :class:`IdTable` s: ``predict_one(user, item)``.

    Constructor arguments are the configuration (:meth:`config`); the module weights, id
    tables and ``samples_trained`` are learned state (see :mod:`learning.weights`).
    ``clip`` bounds predictions (e.g. ``(1, 5)`` for stars). Tables start at
    ``capacity_hint`` rows and double when the id tables outgrow them.
    """

    def __init__(self, kind: str = "mf", *, n_factors: int = 32, hidden: int = 64,
                 out_dim: int = 32, init_std: float = 0.1, ttl_seconds: float | None = None,
                 capacity_hint: int = 1024, clip: tuple[float, float] | None = None,
                 seed: int = 0):
        if kind not in MODULE_KINDS:
            raise ConfigurationError(f'unknown module "{kind}"; expected one of mf, two_tower')
        self.kind = kind
        self.n_factors = n_factors
        self.hidden = hidden
        self.out_dim = out_dim
        self.init_std = init_std
        self.ttl_seconds = ttl_seconds
        self.capacity_hint = capacity_hint
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))
        self.seed = seed
        self.users = IdTable(capacity_hint, ttl_seconds)
        self.items = IdTable(capacity_hint, ttl_seconds)
        self.module: EmbeddingModel
        if kind == "mf":
            self.module = TorchMF(capacity_hint, capacity_hint, n_factors, init_std, seed)
        else:
            self.module = TwoTower(capacity_hint, capacity_hint, n_factors, init_std, seed,
                                   hidden=hidden, out_dim=out_dim)
        self.samples_trained = 0

    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-ready): ``DeepRecommender(**config())`` rebuilds."""
        return {"kind": self.kind, "n_factors": self.n_factors, "hidden": self.hidden,
                "out_dim": self.out_dim, "init_std": self.init_std,
                "ttl_seconds": self.ttl_seconds, "capacity_hint": self.capacity_hint,
                "clip": None if self.clip is None else list(self.clip), "seed": self.seed}

    @property
    def device(self) -> torch.device:
        """Where the module's weights live."""
        return self.module.global_bias.device

    def to(self, device: torch.device | str) -> DeepRecommender:
        """Move the module to ``device``; return self."""
        self.module.to(device)
        return self

    def ensure_capacity(self, rows: tuple[int, int] | None = None) -> bool:
        """Grow the tables (doubling) to cover every row the id tables handed out.

        ``rows`` (user rows, item rows) replaces the id tables' counts (a torchrun follower
        trains rank 0's rows and keeps no id tables of its own).
        """
        m = self.module
        need_u, need_i = (self.users.rows, self.items.rows) if rows is None else rows
        if need_u <= m.n_users and need_i <= m.n_items:
            return False
        m.grow(max(need_u, 2 * m.n_users) if need_u > m.n_users else m.n_users,
               max(need_i, 2 * m.n_items) if need_i > m.n_items else m.n_items)
        return True

    def predict_many(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        """Predictions (float64) for pairs; unknown ids fall back to biases / global mean.

        >>> DeepRecommender(n_factors=2, clip=(1.0, 5.0)).predict_many(["a"], ["b"]).tolist()
        [1.0]
        """
        u = self.users.lookup(users, now=0.0, add=False)
        i = self.items.lookup(items, now=0.0, add=False)
        dev = self.device
        was_training = self.module.training
        self.module.eval()
        pred = self.module.predict_rows(torch.from_numpy(u).to(dev), torch.from_numpy(i).to(dev))
        self.module.train(was_training)
        if self.clip is not None:
            pred = pred.clamp(*self.clip)
        return pred.double().cpu().numpy()

    def predict_one(self, user: str, item: str) -> float:
        """Predict the value ``user`` would give ``item``."""
        return float(self.predict_many([user], [item])[0])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"DeepRecommender({args})"
