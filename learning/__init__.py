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
from learning.rank_blend import SessionBlend
from learning.rank_bpr import BPR
from learning.rank_sequence import CoOccurrence
from learning.rankers import Popularity, Ranker
from learning.ranking_learner import RANKING_MODELS, RankingLearner, make_ranker
from learning.ranking_metrics import RankingPrequential, RankingScore
from learning.replay import ReplayBuffer
from learning.scorer import ItemScorer
from learning.task import RankingTask, RatingTask, Task, get_task
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
