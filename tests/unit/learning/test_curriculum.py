from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.curriculum import (
    by_loss,
    curriculum_order,
    curriculum_stages,
    difficulty,
    train_curriculum,
)
from learning.finetune import FineTuner
from learning.replay import ReplayBuffer
from learning.torch_models import DeepRecommender


def test_difficulty_hand_computed():
    d = difficulty(["a", "a", "b"], ["x", "y", "y"])
    assert d.tolist() == [0.5 + 1.0, 0.5 + 0.5, 1.0 + 0.5]


@settings(max_examples=40, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from("abcde"), st.sampled_from("vwxyz")),
                      max_size=40), stages=st.integers(1, 5), seed=st.integers(0, 3))
def test_order_is_a_permutation_and_stages_get_harder(pairs, stages, seed):
    users = [u for u, _ in pairs]
    items = [i for _, i in pairs]
    values = [3.0] * len(pairs)
    order = curriculum_order(users, items, values, stages=stages, seed=seed)
    assert sorted(order.tolist()) == list(range(len(pairs)))
    if pairs:
        d = difficulty(users, items)
        parts = [p for p in curriculum_stages(users, items, values, stages=stages, seed=seed)
                 if p.size]
        for easy, hard in pairwise(parts):
            assert d[easy].max() <= d[hard].min()


def test_by_loss_low_first():
    class Fixed:
        def predict_many(self, users, items):
            return np.array([1.0, 2.0, 3.0, 4.0])

    order = by_loss(Fixed(), list("abcd"), list("wxyz"), [4.0, 2.0, 3.5, 0.0], stages=4)
    assert order.tolist() == [1, 2, 0, 3]


def test_train_curriculum_runs_each_stage():
    rng = np.random.default_rng(0)
    n = 300
    users = [f"u{k}" for k in rng.zipf(1.5, n) % 50]
    items = [f"i{k}" for k in rng.zipf(1.5, n) % 60]
    values, ts = rng.uniform(1, 5, n), np.arange(n, dtype=float)
    ft = FineTuner(DeepRecommender(n_factors=4, seed=0), device="cpu", batch_size=64)
    reports = train_curriculum(ft, users, items, values, ts, stages=3,
                               buffer=ReplayBuffer(1000, recent_window=100))
    assert [r.fresh for r in reports] == [100, 100, 100]
    assert [r.replayed for r in reports] == [0, 100, 100]


def test_bad_input():
    with pytest.raises(ValueError, match="stages"):
        curriculum_order(["a"], ["x"], [1.0], stages=0)
    with pytest.raises(ValueError, match="equal lengths"):
        curriculum_order(["a"], ["x", "y"], [1.0])
