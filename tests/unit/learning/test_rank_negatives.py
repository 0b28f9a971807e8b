"""Rankers that learn the impression join's negatives (shown, not clicked)."""

from __future__ import annotations

import numpy as np

from learning.rank_bpr import BPR
from learning.ranking_learner import RankingLearner
from stream.schema import Event
from tests.unit.learning.test_rank_deep_follow import backlog, trained  # noqa: F401


def test_bpr_pushes_an_unclicked_item_down_for_that_user() -> None:
    bpr = BPR(n_factors=4, seed=1)
    for _ in range(20):
        for user, item in [("a", 0), ("a", 1), ("b", 2), ("b", 3), ("a", 2)]:
            bpr.learn_one(user, item)
    before = bpr.score_items("a")
    for _ in range(5):
        bpr.learn_negative("a", 2)
    after = bpr.score_items("a")
    assert after[2] < before[2]
    assert after[2] - before[2] < (after - before)[[0, 1, 3]].min()  # it moved down most
    state = bpr.score_items("b").copy(), bpr.score_items("a").copy()
    bpr.learn_negative("nobody", 1)
    bpr.learn_negative("a", 99)  # unknown user / item: nothing changes
    assert np.array_equal(state[0], bpr.score_items("b"))
    assert np.array_equal(state[1], bpr.score_items("a"))


def test_the_ranking_learner_hands_negatives_to_its_ranker() -> None:
    learner = RankingLearner("bpr")
    for e in backlog():
        learner.learn_one(e)
    row = learner.item_ids().index("i4")
    before = learner.ranker.score_items("u0")[row]
    assert learner.learn_negative("u0", "i4", ts=1e4)
    assert learner.ranker.score_items("u0")[row] < before  # the model learned it
    assert learner.negatives_learned == 1


def test_the_followed_deep_part_folds_a_negative_away(trained) -> None:  # noqa: F811
    learner = RankingLearner("bpr", follow_deep=True)
    for e in backlog():
        learner.learn_one(e)
    learner.set_deep(trained, version=1)
    learner.learn_one(Event("p", "u0", "i2", "click", 1.0, 1e4))  # a fold-in to move
    row = learner.item_ids().index("i6")
    deep, bpr = learner.ranker.deep, learner.ranker.base
    before = deep.score_items("u0")[row], bpr.score_items("u0")[row]
    assert learner.learn_negative("u0", "i6", ts=1e4 + 1)
    assert deep.score_items("u0")[row] < before[0] and bpr.score_items("u0")[row] < before[1]
    fresh = deep.score_items("someone-else")
    learner.learn_negative("someone-else", "i6")  # no fold yet: starts one, away from i6
    assert deep.score_items("someone-else")[row] < fresh[row]
