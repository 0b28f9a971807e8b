"""Curriculum for a cold start: train on a backlog easy-to-hard, stage by stage.

Difficulty is inverse frequency: a sample of a frequent user and a frequent item is easy
(its embeddings get many updates and their mean is well estimated), one of a rare user or
item is hard. :func:`curriculum_order` sorts by ``1/n_user + 1/n_item`` and cuts the order
into ``stages`` equal parts, shuffled (seeded) within each part so that no stage is sorted
by id. :func:`by_loss` orders by the current model's squared error instead (low first).
:func:`train_curriculum` runs one fine-tune round per stage; with a replay buffer, earlier
(easier) stages are replayed in later ones.

>>> order = curriculum_order(["a", "a", "a", "b"], ["x", "x", "y", "x"], [4, 4, 3, 2],
...                          stages=2, seed=0)
>>> sorted(order[:2].tolist()), sorted(order[2:].tolist())
([0, 1], [2, 3])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from learning.finetune import FineTuner, RoundReport
from learning.forgetting import Predictor
from learning.replay import ReplayBuffer

__all__ = ["by_loss", "curriculum_order", "curriculum_stages", "difficulty",
           "train_curriculum"]


def _inverse_frequency(ids: Sequence[str]) -> np.ndarray:
    _, inverse, counts = np.unique(np.asarray(ids, dtype=object).astype(str),
                                   return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def difficulty(users: Sequence[str], items: Sequence[str]) -> np.ndarray:
    """Per-sample difficulty ``1/n_user + 1/n_item`` (in [0, 2]; higher is harder)."""
    if len(users) != len(items):
        raise ValueError("users and items must have equal lengths")
    if not len(users):
        return np.empty(0)
    return _inverse_frequency(users) + _inverse_frequency(items)


def _staged(score: np.ndarray, stages: int, seed: int) -> list[np.ndarray]:
    if stages < 1:
        raise ValueError(f"stages must be >= 1, got {stages}")
    rng = np.random.default_rng(seed)
    order = np.argsort(score, kind="stable")
    parts = np.array_split(order, stages)
    return [part[rng.permutation(part.size)] for part in parts]


def curriculum_stages(users: Sequence[str], items: Sequence[str],
                      values: Sequence[float] | np.ndarray, *, stages: int = 3,
                      seed: int = 0) -> list[np.ndarray]:
    """The sample indices of each stage, easiest stage first."""
    if len(values) != len(users):
        raise ValueError("users, items and values must have equal lengths")
    return _staged(difficulty(users, items), stages, seed)


def curriculum_order(users: Sequence[str], items: Sequence[str],
                     values: Sequence[float] | np.ndarray, *, stages: int = 3,
                     seed: int = 0) -> np.ndarray:
    """All sample indices, easy to hard (stages concatenated); a permutation of the samples."""
    parts = curriculum_stages(users, items, values, stages=stages, seed=seed)
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def by_loss(recommender: Predictor, users: Sequence[str], items: Sequence[str],
            values: Sequence[float] | np.ndarray, *, stages: int = 3,
            seed: int = 0) -> np.ndarray:
    """Indices ordered by the model's current squared error, low first (staged, shuffled).

    >>> class Three:
    ...     def predict_many(self, users, items):
    ...         return np.full(len(users), 3.0)
    >>> by_loss(Three(), ["a", "b", "c"], ["x", "y", "z"], [1.0, 3.0, 4.0], stages=3).tolist()
    [1, 2, 0]
    """
    pred = np.asarray(recommender.predict_many(users, items), dtype=np.float64)
    loss = (pred - np.asarray(values, dtype=np.float64)) ** 2
    return np.concatenate(_staged(loss, stages, seed))


def train_curriculum(finetuner: FineTuner, users: Sequence[str], items: Sequence[str],
                     values: Sequence[float] | np.ndarray, ts: Sequence[float] | np.ndarray,
                     stages: int = 3, *, buffer: ReplayBuffer | None = None,
                     seed: int = 0) -> list[RoundReport]:
    """One :meth:`FineTuner.round` per curriculum stage, easiest first; their reports."""
    vals, times = np.asarray(values, dtype=np.float32), np.asarray(ts, dtype=np.float64)
    reports = []
    for part in curriculum_stages(users, items, vals, stages=stages, seed=seed):
        idx = part.tolist()
        reports.append(finetuner.round([users[k] for k in idx], [items[k] for k in idx],
                                       vals[part], times[part], buffer))
    return reports
