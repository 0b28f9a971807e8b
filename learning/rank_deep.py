"""The deep ranking model: a torch MF / two-tower that ranks the whole catalogue (issue 8).

:class:`DeepRanker` is a :class:`~learning.torch_models.DeepRecommender` trained by the
fine-tuner with a ranking loss (:mod:`learning.rank_loss`) on positives. It also keeps,
per user row, the last ``max_seen`` item rows it was trained on, so it implements
:class:`~learning.scorer.ItemScorer` and a subscriber can ``recommend(user, k)`` with it:
``score_items(user)`` is ``b_i + <user_repr(p_u), item_repr(q_i)>`` for every item (one
matrix-vector product), the item biases alone (what the model learned of popularity) for
a user it does not know. It is stored in format ``deep-ranking`` (safetensors: the weights
and id tables as :mod:`learning.weights` writes them, plus the seen lists; no pickle).

:func:`ranking_errors` scores a model on a held-back slice for the gate: every held event
ranks all items the model knows except the user's seen ones (the event's item is always
ranked), errors ``1 - NDCG@k`` and ``1 - HR@k`` (lower is better, as the gate wants);
:class:`RankingTracker` is the :class:`~learning.forgetting.ForgettingTracker` with those
errors, so :func:`learning.rounds.run_round` gates ranking models on ranking figures.

>>> import numpy as np
>>> rec = DeepRanker(n_factors=4, seed=0)
>>> rows = rec.users.lookup(["u1", "u1"], 0.0), rec.items.lookup(["a", "b"], 0.0)
>>> rec.observe(*rows)
>>> rec.item_ids(), rec.seen_items("u1").tolist(), rec.score_items("nobody").tolist()
(['a', 'b'], [0, 1], [0.0, 0.0])
>>> clone = load(dump(rec))
>>> type(clone).__name__, clone.seen_items("u1").tolist(), clone.max_seen
('DeepRanker', [0, 1], 200)
>>> np.allclose(clone.score_items("u1"), rec.score_items("u1"))
True
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from learning import weights
from learning.forgetting import ForgettingTracker
from learning.slices import Samples
from learning.torch_models import DeepRecommender

__all__ = ["FORMAT", "DeepRanker", "RankingTracker", "dump", "load", "ranking_errors"]

FORMAT = "deep-ranking"
_PREFIX = "ranking."


class DeepRanker(DeepRecommender):
    """A :class:`DeepRecommender` that ranks: seen lists plus the ItemScorer methods.

    ``max_seen`` bounds the item rows remembered per user (the most recent are kept).
    """

    store_format = FORMAT

    def __init__(self, kind: str = "mf", *, max_seen: int = 200, **options: Any):
        super().__init__(kind, **options)
        if max_seen < 1:
            raise ValueError(f"max_seen must be >= 1, got {max_seen}")
        self.max_seen = max_seen
        self._seen: dict[int, list[int]] = {}
        self._cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def config(self) -> dict[str, Any]:
        """The constructor arguments: ``DeepRanker(**config())`` rebuilds."""
        return {**super().config(), "max_seen": self.max_seen}

    @classmethod
    def of(cls, rec: DeepRecommender, max_seen: int = 200) -> DeepRanker:
        """A ranker sharing ``rec``'s module, id tables and counters (no seen lists yet)."""
        out = cls.__new__(cls)
        out.__dict__.update(rec.__dict__)
        out.max_seen, out._seen, out._cache = max_seen, {}, None
        return out

    # learning -----------------------------------------------------------------------
    def observe(self, user_rows: np.ndarray, item_rows: np.ndarray,
                evicted_users: np.ndarray | None = None) -> None:
        """Remember that ``user_rows[k]`` interacted with ``item_rows[k]`` (fine-tuner hook)."""
        seen = self._seen
        if evicted_users is not None:
            for row in evicted_users.tolist():
                seen.pop(row, None)
        touched = set()
        for u, i in zip(np.asarray(user_rows).tolist(), np.asarray(item_rows).tolist(),
                        strict=True):
            seen.setdefault(u, []).append(i)
            touched.add(u)
        cap = self.max_seen
        for u in touched:
            lst = seen[u]
            if len(lst) > 2 * cap:
                seen[u] = list(dict.fromkeys(reversed(lst)))[:cap][::-1]
        self._cache = None

    def invalidate(self) -> None:
        """Drop the cached item matrix (call after the weights changed)."""
        self._cache = None

    # serving --------------------------------------------------------------------------
    @torch.no_grad()
    def item_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """``(item_repr (n, d), item_bias (n,))`` float32 for rows ``0 .. items.rows - 1``."""
        n = self.items.rows
        key = self.samples_trained
        if self._cache is not None and self._cache[0] == key and len(self._cache[2]) == n:
            return self._cache[1], self._cache[2]
        table = self.module.item_table[:n]
        was = self.module.training
        self.module.eval()
        reps = self.module.item_repr(table[:, :-1]).float().cpu().numpy()
        self.module.train(was)
        bias = table[:, -1].float().cpu().numpy().copy()
        free = np.isinf(self.items.last_seen) if self.items.ttl_seconds else None
        if free is not None and free.any():
            bias[free] = -np.inf
        self._cache = (key, reps, bias)
        return reps, bias

    @torch.no_grad()
    def user_reprs(self, rows: np.ndarray) -> np.ndarray:
        """``user_repr(p_u)`` float32 for user ``rows`` (all valid)."""
        table = self.module.user_table
        idx = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=table.device)
        was = self.module.training
        self.module.eval()
        out = self.module.user_repr(table[idx, :-1]).float().cpu().numpy()
        self.module.train(was)
        return out

    def item_ids(self) -> list[str]:
        """Item ids in row order (a free row's id is ``""``; it scores ``-inf``)."""
        return [self.items.id_of(r) or "" for r in range(self.items.rows)]

    def score_items(self, user: str) -> np.ndarray:
        """float64 scores of every item row; item biases alone for an unknown user."""
        reps, bias = self.item_matrix()
        row = self.users.lookup([user], now=0.0, add=False)[0]
        if row < 0:
            return bias.astype(np.float64)
        return (reps @ self.user_reprs(np.array([row]))[0] + bias).astype(np.float64)

    def seen_items(self, user: str) -> np.ndarray:
        """Item rows ``user`` was trained on (the last ``max_seen``), ascending."""
        row = self.users.lookup([user], now=0.0, add=False)[0]
        lst = self._seen.get(int(row), ()) if row >= 0 else ()
        return np.unique(np.asarray(lst, dtype=np.int64))[-self.max_seen:] if lst else \
            np.zeros(0, dtype=np.int64)

    def seen_rows(self, row: int) -> np.ndarray:
        """Seen item rows of user ``row`` (unique)."""
        lst = self._seen.get(int(row))
        return np.unique(np.asarray(lst, dtype=np.int64)) if lst else np.zeros(0, np.int64)

    def item_vectors(self) -> np.ndarray:
        """Item representations in row order (for MMR diversity)."""
        return self.item_matrix()[0]


def ranking_errors(model: Any, samples: Samples, k: int = 10,
                   chunk: int = 512) -> tuple[float, float]:
    """``(1 - NDCG@k, 1 - HR@k)`` of ``model`` (a :class:`DeepRanker`) on ``samples``.

    Each sample ranks every item the model knows except the user's seen ones (the
    sample's own item always stays); an unknown item is a miss. NaN for no samples.
    Hard negatives (samples with a negative value, :mod:`learning.rank_loss`) are not ranked.
    """
    if any(v < 0 for v in samples.values):
        keep = [j for j, v in enumerate(samples.values) if v >= 0]
        samples = Samples([samples.users[j] for j in keep], [samples.items[j] for j in keep],
                          [samples.values[j] for j in keep], [samples.ts[j] for j in keep])
    n = len(samples)
    if n == 0:
        return math.nan, math.nan
    reps, bias = model.item_matrix()
    urows = model.users.lookup(samples.users, now=0.0, add=False)
    irows = model.items.lookup(samples.items, now=0.0, add=False)
    ranks = np.full(n, np.iinfo(np.int64).max)
    known = np.flatnonzero(irows >= 0)
    for start in range(0, len(known), chunk):
        sel = known[start : start + chunk]
        scores = np.tile(bias, (len(sel), 1))
        has = urows[sel] >= 0
        if has.any():
            scores[has] += model.user_reprs(urows[sel][has]) @ reps.T
        for j, s in enumerate(sel.tolist()):
            if urows[s] >= 0:
                seen = model.seen_rows(int(urows[s]))
                scores[j, seen[seen != irows[s]]] = -np.inf
        target = scores[np.arange(len(sel)), irows[sel]]
        ranks[sel] = 1 + np.count_nonzero(scores > target[:, None], axis=1)
    hit = ranks <= k
    gain = np.where(hit, 1.0 / np.log2(np.minimum(ranks, k) + 1.0), 0.0)
    return 1.0 - float(gain.mean()), 1.0 - float(hit.mean())


class RankingTracker(ForgettingTracker):
    """:class:`ForgettingTracker` whose slice errors are ``1 - NDCG@k`` and ``1 - HR@k``.

    :class:`~learning.forgetting.WindowScores` keeps its field names: for a ranking model
    ``recent_rmse`` holds ``1 - NDCG@k`` and ``recent_mae`` ``1 - HR@k``.
    """

    error_names = ("1-ndcg", "1-hr")

    def __init__(self, k: int = 10, max_slices: int = 8, max_samples: int = 5000):
        super().__init__(max_slices, max_samples)
        self.k = k

    def errors(self, model: Any, samples: Samples) -> tuple[float, float]:
        """``1 - NDCG@k`` and ``1 - HR@k`` of ``model`` on ``samples``."""
        return ranking_errors(model, samples, self.k)


def dump(ranker: DeepRanker) -> bytes:
    """``ranker`` as safetensors bytes: :func:`learning.weights.dump` plus the seen lists."""
    base = weights.dump(ranker)
    meta = weights.safetensors_metadata(base)
    config = json.loads(meta["config"])
    meta["config"] = json.dumps({k: v for k, v in config.items() if k != "max_seen"})
    meta["ranking"] = json.dumps({"max_seen": ranker.max_seen})
    tensors = st_load(base)
    users = np.array(sorted(ranker._seen), dtype=np.int64)
    lists = [np.asarray(ranker._seen[u], dtype=np.int64) for u in users.tolist()]
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(x) for x in lists]) if lists else []
    items = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    tensors.update({f"{_PREFIX}seen_users": torch.from_numpy(users),
                    f"{_PREFIX}seen_indptr": torch.from_numpy(indptr),
                    f"{_PREFIX}seen_items": torch.from_numpy(items)})
    return st_save(tensors, metadata=meta)


def load(blob: bytes, device: torch.device | str = "cpu") -> DeepRanker:
    """Rebuild the :class:`DeepRanker` :func:`dump` wrote."""
    meta = weights.safetensors_metadata(blob)
    if "ranking" not in meta:
        raise weights.WeightsError(f"weights blob is not in format {FORMAT}")
    tensors = st_load(blob)
    users = tensors.pop(f"{_PREFIX}seen_users").numpy()
    indptr = tensors.pop(f"{_PREFIX}seen_indptr").numpy()
    items = tensors.pop(f"{_PREFIX}seen_items").numpy()
    options = json.loads(meta.pop("ranking"))
    base = weights.load(st_save(tensors, metadata=meta), device)
    ranker = DeepRanker.of(base, max_seen=int(options["max_seen"]))
    ranker._seen = {int(u): items[indptr[j] : indptr[j + 1]].tolist()
                    for j, u in enumerate(users.tolist())}
    return ranker


#: the model-store formats this module defines (see :mod:`model_store.codec`)
CODECS = {FORMAT: (dump, load)}
