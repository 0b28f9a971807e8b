import math

import numpy as np
import pytest

from learning.forgetting import ForgettingTracker, slice_error


class Table:
    def __init__(self, table):
        self.table = table

    def predict_many(self, users, items):
        return np.array([self.table[(u, i)] for u, i in zip(users, items, strict=True)])


def test_slice_error_hand_computed():
    model = Table({("a", "x"): 3.0, ("b", "y"): 1.0})
    rmse, mae = slice_error(model, ["a", "b"], ["x", "y"], [4.0, 4.0])
    assert rmse == pytest.approx(math.sqrt((1 + 9) / 2)) and mae == pytest.approx(2.0)
    assert all(math.isnan(x) for x in slice_error(model, [], [], []))


def test_matrix_bwt_recent_old_hand_computed():
    t = ForgettingTracker()
    for row in ([0.8], [1.0, 0.7], [1.1, 0.9, 0.6], [1.4, 1.0, 0.7, 0.5]):
        t.record(row)
    m = t.matrix
    assert m.shape == (4, 4) and math.isnan(m[0, 1]) and m[3, 0] == 1.4
    # BWT = mean(1.4 - 0.8, 1.0 - 0.7, 0.7 - 0.6) = mean(0.6, 0.3, 0.1)
    assert t.bwt() == pytest.approx(1.0 / 3.0)
    assert t.recent_error == 0.5 and t.old_error == pytest.approx((1.4 + 1.0 + 0.7) / 3)
    improving = ForgettingTracker()
    improving.record([1.0])
    improving.record([0.8, 0.9])
    assert improving.bwt() == pytest.approx(-0.2)  # negative: later learning helped


def test_evaluate_scores_slices_seen_so_far():
    model = Table({("a", "x"): 3.0, ("b", "y"): 2.0})
    slices = [(["a"], ["x"], [4.0]), (["b"], ["y"], [2.5])]
    t = ForgettingTracker(metric="mae")
    assert t.evaluate(model, slices) == [1.0]
    assert t.evaluate(model, slices) == [1.0, 0.5]
    assert t.bwt() == 0.0
    back = ForgettingTracker.restore(t.snapshot())
    assert np.array_equal(back.matrix, t.matrix, equal_nan=True)


def test_empty_and_bad_input():
    t = ForgettingTracker()
    assert math.isnan(t.bwt()) and math.isnan(t.recent_error) and math.isnan(t.old_error)
    with pytest.raises(ValueError, match="expected 1 errors, got 2"):
        t.record([1.0, 2.0])
    with pytest.raises(ValueError, match="unknown metric"):
        ForgettingTracker("auc")
