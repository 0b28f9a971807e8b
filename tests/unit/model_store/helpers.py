"""Picklable test models (importable, so also usable from other processes)."""

from __future__ import annotations


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
