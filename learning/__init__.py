"""Pure computation: River models, torch models, replay, fine-tuning, evaluation.

Names bound to River (the rating models, :class:`OnlineLearner`) or to torch (the deep
models, the fine-tuner, the weights format) are imported on first use (PEP 562), so
ranking-only code pays for neither (River and its scipy import: ~1 s of start-up) and
River-only code never pays for torch: ``from learning import DeepRecommender`` still works.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from learning.errors import ConfigurationError, LearningError
from learning.forgetting import ForgettingTracker, slice_error
from learning.gate import Gate, GateDecision, SliceScores
from learning.idtable import IdTable
from learning.prequential import Prequential, PrequentialScore
from learning.rank_blend import SessionBlend
from learning.rank_bpr import BPR
from learning.rank_sequence import CoOccurrence
from learning.rankers import Popularity, Ranker
from learning.ranking_learner import RANKING_MODELS, RankingLearner, make_ranker
from learning.ranking_metrics import RankingPrequential, RankingScore
from learning.replay import ReplayBuffer
from learning.scorer import ItemScorer
from learning.task import RankingTask, RatingTask, Task, get_task

if TYPE_CHECKING:
    from learning import weights
    from learning.curriculum import by_loss, curriculum_order, train_curriculum
    from learning.device import pick_device
    from learning.finetune import FineTuner, RoundReport
    from learning.models import MODEL_NAMES, Recommender, make_model
    from learning.online import OnlineLearner
    from learning.torch_models import DeepRecommender, TorchMF, TwoTower

__all__ = [
    "BPR",
    "MODEL_NAMES",
    "RANKING_MODELS",
    "CoOccurrence",
    "ConfigurationError",
    "DeepRecommender",
    "FineTuner",
    "ForgettingTracker",
    "Gate",
    "GateDecision",
    "IdTable",
    "ItemScorer",
    "LearningError",
    "OnlineLearner",
    "Popularity",
    "Prequential",
    "PrequentialScore",
    "Ranker",
    "RankingLearner",
    "RankingPrequential",
    "RankingScore",
    "RankingTask",
    "RatingTask",
    "Recommender",
    "ReplayBuffer",
    "RoundReport",
    "SessionBlend",
    "SliceScores",
    "Task",
    "TorchMF",
    "TwoTower",
    "by_loss",
    "curriculum_order",
    "get_task",
    "make_model",
    "make_ranker",
    "pick_device",
    "slice_error",
    "train_curriculum",
    "weights",
]

# River- or torch-bound name -> the module that defines it (imported on first access)
_LAZY = {
    "MODEL_NAMES": "learning.models",
    "Recommender": "learning.models",
    "make_model": "learning.models",
    "OnlineLearner": "learning.online",
    "DeepRecommender": "learning.torch_models",
    "TorchMF": "learning.torch_models",
    "TwoTower": "learning.torch_models",
    "FineTuner": "learning.finetune",
    "RoundReport": "learning.finetune",
    "by_loss": "learning.curriculum",
    "curriculum_order": "learning.curriculum",
    "train_curriculum": "learning.curriculum",
    "pick_device": "learning.device",
}


def __getattr__(name: str) -> Any:
    """Import a River- or torch-bound name on first use."""
    if name == "weights":
        return importlib.import_module("learning.weights")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'learning' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, the lazy ones included."""
    return sorted(set(globals()) | set(__all__))
