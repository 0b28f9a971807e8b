import math

import numpy as np
import pytest

from learning.forgetting import ForgettingTracker, slice_error
from learning.slices import HoldBack, Samples


class Table:
    def __init__(self, table):
        self.table = table

    def predict_many(self, users, items):
        return np.array([self.table[(u, i)] for u, i in zip(users, items, strict=True)])


class Const:
    def __init__(self, c):
        self.c = c

    def predict_many(self, users, items):
        return np.full(len(users), self.c)


def test_slice_error_hand_computed():
    model = Table({("a", "x"): 3.0, ("b", "y"): 1.0})
    rmse, mae = slice_error(model, Samples(["a", "b"], ["x", "y"], [4.0, 4.0]))
    assert rmse == pytest.approx(math.sqrt((1 + 9) / 2)) and mae == pytest.approx(2.0)
    assert all(math.isnan(x) for x in slice_error(model, Samples()))


def slices(*values):
    return [Samples([f"u{k}"], [f"i{k}"], [v]) for k, v in enumerate(values)]


def test_matrix_bwt_recent_old_hand_computed():
    # slice k has value k; a model predicting c has error |c - k| on it
    t = ForgettingTracker()
    s = slices(0.0, 1.0, 2.0, 3.0)
    for k, c in enumerate((0.0, 1.5, 2.0, 3.5)):
        t.add(s[k], t.score(Const(c), s[k]))
    m = t.matrix
    assert m.shape == (4, 4) and math.isnan(m[0, 1]) and m[3, 0] == 3.5
    # after round 3: errors 3.5, 2.5, 1.5 on slices 0-2, learned at 0, 0.5, 0
    assert t.bwt() == pytest.approx(np.mean([3.5 - 0.0, 2.5 - 0.5, 1.5 - 0.0]))
    assert t.recent_error == 0.5 and t.old_error == pytest.approx(2.5)
    improving = ForgettingTracker()
    first = Samples(["a"], ["x"], [1.0])
    improving.add(first, improving.score(Const(2.0), first))
    second = Samples(["b"], ["y"], [1.0])
    assert improving.add(second, improving.score(Const(1.0), second)).bwt == -1.0


def test_window_keeps_the_last_slices_subsampled_and_restores():
    t = ForgettingTracker(max_slices=2, max_samples=3)
    big = Samples([f"u{k}" for k in range(10)], ["i"] * 10, [float(k) for k in range(10)])
    for _ in range(4):
        t.add(big, t.score(Const(4.5), big))
    assert len(t) == 2 and t.matrix.shape == (4, 4)
    assert math.isnan(t.matrix[3, 0]) and not math.isnan(t.matrix[3, 1])  # slice 0 dropped
    back = ForgettingTracker.restore(t.snapshot())
    assert np.array_equal(back.matrix, t.matrix, equal_nan=True) and back.bwt() == t.bwt()
    assert back.score(Const(1.0), big) == t.score(Const(1.0), big)


def test_empty_and_bad_input():
    t = ForgettingTracker()
    assert math.isnan(t.bwt()) and math.isnan(t.recent_error) and math.isnan(t.old_error)
    with pytest.raises(ValueError, match="max_slices"):
        ForgettingTracker(0)
    with pytest.raises(ValueError, match="every must be >= 2"):
        HoldBack(1)
    with pytest.raises(ValueError, match="holdout_share"):
        HoldBack.share(0.9)
