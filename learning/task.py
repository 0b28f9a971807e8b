"""The learning task, chosen per model: ``rating`` (regress the value) or ``ranking`` (implicit).

A task builds the learner the worker drives and says which prequential figures apply, so
callers (``lifelong evaluate``, benchmarks) ask the task instead of branching on its name.
``rating`` is today's regression on ``value`` with RMSE/MAE. ``ranking`` treats every event
as a positive interaction weighted by its ``type`` (defaults: view 1, click 2, cart 3,
purchase 4; a rating of any value is one interaction, weight 1, as MovieTweetings' README
reads ratings as implicit feedback) and reports HR@k, NDCG@k, coverage, diversity and
novelty under the prequential ranking protocol.

>>> task = get_task("ranking", k=5)
>>> learner = task.make_learner("decayed-popularity")
>>> task.name, learner.k, task.metric_names()[:2]
('ranking', 5, ('hr@5', 'ndcg@5'))
>>> get_task("rating").make_learner("Baseline").model_name
'Baseline'
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from learning.errors import ConfigurationError
from learning.ranking_learner import DEFAULT_WEIGHTS, RankingLearner

if TYPE_CHECKING:  # River: imported by the rating task's make_learner, not by ranking
    from learning.online import OnlineLearner

__all__ = ["TASKS", "RankingTask", "RatingTask", "Task", "get_task"]


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


class Task(Protocol):
    """What a task decides: the learner for a model name, and the figures it reports."""

    name: str
    default_model: str

    def make_learner(self, model: str, *, seed: int = 42) -> Any:
        """The learner the worker drives for ``model``."""
        ...

    def metric_names(self) -> tuple[str, ...]:
        """The prequential figures this task reports."""
        ...

    def headline(self, learner: Any) -> tuple[str, float]:
        """The one figure a progress bar shows, with its name."""
        ...

    def report(self, learner: Any) -> dict[str, Any]:
        """The task's figures of ``learner`` for ``report.json``."""
        ...


class RatingTask:
    """Regression on the event ``value`` (River recommenders), scored by RMSE and MAE."""

    name = "rating"
    default_model = "BiasedMF"

    def __init__(self, clip: tuple[float, float] | None = None):
        self.clip = clip

    def make_learner(self, model: str, *, seed: int = 42) -> OnlineLearner:
        """An :class:`~learning.online.OnlineLearner` for River model ``model``."""
        from learning.online import OnlineLearner

        return OnlineLearner(model, seed=seed, clip=self.clip)

    def metric_names(self) -> tuple[str, ...]:
        """RMSE and MAE, since start and rolling."""
        return ("rmse", "mae", "rolling_rmse", "rolling_mae")

    def headline(self, learner: Any) -> tuple[str, float]:
        """The one figure a progress bar shows."""
        return "rmse", learner.score().rmse

    def report(self, learner: Any) -> dict[str, Any]:
        """RMSE/MAE figures."""
        s = learner.score()
        return {"rmse": s.rmse, "mae": s.mae, "rolling_rmse": s.rolling_rmse,
                "rolling_mae": s.rolling_mae}


class RankingTask:
    """Implicit feedback: weighted positives, prequential ranking figures at ``k``."""

    name = "ranking"
    default_model = "rerank"

    def __init__(self, weights: Mapping[str, float] | None = None, *, k: int = 10,
                 window: int = 1000, part_metrics: bool = True):
        if k < 1:
            raise ConfigurationError(f"k must be a positive integer, got {k}")
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.k = k
        self.window = window
        self.part_metrics = part_metrics

    def weight(self, event_type: str) -> float:
        """The positive weight of an event ``type`` (1.0 for a type not listed)."""
        return self.weights.get(event_type, 1.0)

    def make_learner(self, model: str, *, seed: int = 42,
                     follow_deep: bool = False) -> RankingLearner:
        """A :class:`~learning.ranking_learner.RankingLearner` for ranking model ``model``.

        ``follow_deep``: it mixes in the fine-tuner's published deep ranker (``--blend-with``).
        """
        return RankingLearner(model, weights=self.weights, k=self.k, window=self.window,
                              seed=seed, part_metrics=self.part_metrics,
                              follow_deep=follow_deep)

    def metric_names(self) -> tuple[str, ...]:
        """HR, NDCG and coverage at k, diversity, novelty."""
        k = self.k
        return (f"hr@{k}", f"ndcg@{k}", f"coverage@{k}", "intra_list_diversity", "novelty")

    def _figures(self, s: Any) -> dict[str, Any]:
        k = self.k
        return {f"hr@{k}": _num(s.hr), f"ndcg@{k}": _num(s.ndcg),
                f"coverage@{k}": _num(s.coverage),
                "intra_list_diversity": _num(s.intra_list_diversity),
                "novelty": _num(s.novelty), f"rolling_hr@{k}": _num(s.rolling_hr),
                f"rolling_ndcg@{k}": _num(s.rolling_ndcg),
                f"rolling_coverage@{k}": _num(s.rolling_coverage)}

    def headline(self, learner: Any) -> tuple[str, float]:
        """The one figure a progress bar shows."""
        return f"hr@{self.k}", learner.score().hr

    def report(self, learner: Any) -> dict[str, Any]:
        """Counters, the figures, and the same figures per part of a blend."""
        counts = learner.describe()
        return {"task": self.name, "k": self.k, "weights": self.weights,
                "evaluated": counts["evaluated"], "cold_users": counts["cold_users"],
                "items": counts["items"], "users": counts["users"],
                **self._figures(learner.score()),
                "models": {name: self._figures(s) for name, s in learner.part_scores().items()}}


TASKS: dict[str, type[RatingTask] | type[RankingTask]] = {"rating": RatingTask,
                                                          "ranking": RankingTask}


def get_task(name: str, **options: Any) -> RatingTask | RankingTask:
    """The task called ``name``, given those ``options`` it takes that are not None.

    Options another task takes are ignored, so a caller can pass everything it has:

    >>> get_task("rating", clip=(1.0, 5.0), k=10).clip
    (1.0, 5.0)
    """
    try:
        cls = TASKS[name]
    except KeyError:
        raise ConfigurationError(f"unknown task {name!r}; expected one of "
                                 f"{', '.join(TASKS)}") from None
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted and v is not None})
