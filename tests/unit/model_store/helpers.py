"""Picklable test models (importable, so also usable from other processes)."""

from __future__ import annotations

import numpy as np


class Const:
    """A "model" that predicts one constant, with the learner's verb."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict_one(self, user: str, item: str) -> float:
        return self.value


class ByItem:
    """Predicts a score per item (for ranking)."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def predict(self, user: str, item: str) -> float:
        return self.scores.get(item, 0.0)


class VectorScorer:
    """A reference ranking model implementing ``learning.scorer.ItemScorer`` in numpy.

    Known users score items by ``item_vectors @ user_vector``; unknown users get the
    popularity vector. ``seen`` maps a user to the rows they interacted with.
    """

    def __init__(self, items: list[str], item_vectors: np.ndarray,
                 user_vectors: dict[str, np.ndarray], popularity: np.ndarray,
                 seen: dict[str, list[int]] | None = None) -> None:
        self.items = list(items)
        self.vectors = np.asarray(item_vectors, dtype=np.float64)
        self.users = user_vectors
        self.popularity = np.asarray(popularity, dtype=np.float64)
        self.seen = seen or {}

    @classmethod
    def random(cls, n_items: int, n_users: int = 20, d: int = 8, seed: int = 0,
               n_seen: int = 5) -> VectorScorer:
        rng = np.random.default_rng(seed)
        items = [f"i{n}" for n in range(n_items)]
        users = {f"u{n}": rng.normal(size=d) for n in range(n_users)}
        seen = {u: sorted(rng.choice(n_items, min(n_seen, n_items), replace=False).tolist())
                for u in users}
        return cls(items, rng.normal(size=(n_items, d)), users,
                   rng.random(n_items), seen)

    def item_ids(self) -> list[str]:
        return self.items

    def score_items(self, user: str) -> np.ndarray:
        vec = self.users.get(user)
        return self.popularity.copy() if vec is None else self.vectors @ vec

    def seen_items(self, user: str) -> np.ndarray:
        return np.asarray(self.seen.get(user, []), dtype=np.int64)

    def item_vectors(self) -> np.ndarray | None:
        return self.vectors


class ByUser:
    """Predicts a score per user (for pseudonym mapping tests); unknown users get 0."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def predict_one(self, user: str, item: str) -> float:
        return self.scores.get(user, 0.0)
