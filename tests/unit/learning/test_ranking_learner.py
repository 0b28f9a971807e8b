import math

import numpy as np
import pytest

from consumers.worker import LearnerWorker
from learning.errors import ConfigurationError
from learning.ranking_learner import RANKING_MODELS, RankingLearner
from learning.scorer import ItemScorer
from monitoring.drift import ErrorDrift
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource
from stream.synthetic import SyntheticStream


def _events(n=600, seed=4):
    return [Event(e.event_id, e.user_id, e.item_id, "click", 1.0, e.ts)
            for e in SyntheticStream(n_events=n, seed=seed)]


def test_the_protocol_counts_by_hand():
    learner = RankingLearner("popularity")
    rows = [("a", "x"), ("a", "x"), ("b", "y"), ("b", "x"), ("a", "z"), ("a", "y")]
    losses = [learner.learn_one(Event(f"e{i}", u, it, "view", 1.0, float(i)))
              for i, (u, it) in enumerate(rows)]
    # ranked: b->x (x known, new to b), a->y (y known, new to a); a->z: z unknown; a->x: seen
    assert learner.score().n == 2 and learner.cold_events == 2
    assert [math.isnan(x) for x in losses] == [True, True, True, False, True, False]
    assert learner.score().hr == 1.0  # two candidates at most, k = 10
    assert learner.describe() == {"events": 6, "evaluated": 2, "cold_users": 2, "items": 3,
                                  "users": 2}


def test_weights_follow_the_event_type():
    learner = RankingLearner("popularity", weights={"view": 1.0, "purchase": 5.0})
    learner.learn_one(Event("1", "a", "x", "view", 1.0, 0.0))
    learner.learn_one(Event("2", "a", "y", "purchase", 1.0, 1.0))
    assert learner.score_items("anyone").tolist() == [1.0, 5.0]
    with pytest.raises(ConfigurationError, match="positive"):
        RankingLearner(weights={"view": 0.0})
    with pytest.raises(ConfigurationError, match="unknown ranking model"):
        RankingLearner("nope")


@pytest.mark.parametrize("model", sorted(RANKING_MODELS))
def test_snapshot_restore_continue_equals_uninterrupted(model):
    events = _events()
    whole, half = RankingLearner(model, window=50), RankingLearner(model, window=50)
    for e in events[:300]:
        whole.learn_one(e)
        half.learn_one(e)
    resumed = RankingLearner.restore(half.snapshot())
    for e in events[300:]:
        whole.learn_one(e)
        resumed.learn_one(e)
    assert resumed.score() == whole.score() and resumed.part_scores() == whole.part_scores()
    user = events[-1].user_id
    assert np.array_equal(resumed.score_items(user), whole.score_items(user))


def test_it_is_an_item_scorer_and_cold_users_get_popular_items():
    learner = RankingLearner("blend")
    for e in _events(300):
        learner.learn_one(e)
    assert isinstance(learner, ItemScorer)
    scores = learner.score_items("never seen")
    assert scores.shape == (len(learner.item_ids()),) and scores.max() > 0
    assert learner.seen_items("never seen").size == 0
    user = _events(300)[-1].user_id
    assert set(learner.seen_items(user).tolist()) <= set(range(len(learner.item_ids())))
    assert learner.item_vectors() is None
    assert RankingLearner("bpr").item_vectors() is not None


def test_it_runs_in_the_production_worker_with_drift_on_its_own_loss():
    events = _events(800)
    learner = RankingLearner("blend")
    worker = LearnerWorker(ListSource([encode(e) for e in events], batch_size=100), learner,
                           ListDeadLetters(), drift=ErrorDrift())
    stats = worker.run()
    assert stats.learned == 800 and learner.events_seen == 800
    assert learner.score().n > 100 and 0.0 < learner.score().hr <= 1.0
    direct = RankingLearner("blend")
    for e in events:
        direct.learn_one(e)
    assert direct.score() == learner.score()
    assert set(learner.part_scores()) == {"popularity", "co_occurrence", "sequence"}
