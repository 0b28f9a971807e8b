"""Pure computation: River models, torch models, replay, fine-tuning, evaluation."""

from learning import weights
from learning.curriculum import by_loss, curriculum_order, train_curriculum
from learning.device import pick_device
from learning.errors import ConfigurationError, LearningError
from learning.finetune import FineTuner, RoundReport
from learning.forgetting import ForgettingTracker, slice_error
from learning.gate import Gate, GateDecision, SliceScores
from learning.idtable import IdTable
from learning.models import MODEL_NAMES, Recommender, make_model
from learning.online import OnlineLearner
from learning.prequential import Prequential, PrequentialScore
from learning.replay import ReplayBuffer
from learning.torch_models import DeepRecommender, TorchMF, TwoTower

__all__ = [
    "MODEL_NAMES",
    "ConfigurationError",
    "DeepRecommender",
    "FineTuner",
    "ForgettingTracker",
    "Gate",
    "GateDecision",
    "IdTable",
    "LearningError",
    "OnlineLearner",
    "Prequential",
    "PrequentialScore",
    "Recommender",
    "ReplayBuffer",
    "RoundReport",
    "SliceScores",
    "TorchMF",
    "TwoTower",
    "by_loss",
    "curriculum_order",
    "make_model",
    "pick_device",
    "slice_error",
    "train_curriculum",
    "weights",
]
