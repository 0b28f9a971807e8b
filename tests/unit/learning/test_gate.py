import math

import pytest

from learning.gate import Gate, SliceScores


@pytest.mark.parametrize(("cand", "prod", "promote", "why"), [
    (SliceScores(1.0, 1.0), None, True, "no production"),
    (SliceScores(1.019, 1.0), SliceScores(1.0, 1.0), True, "within bounds"),
    (SliceScores(1.03, 1.0), SliceScores(1.0, 1.0), False, "recent-slice error 1.03 is 3.0%"),
    (SliceScores(0.9, 1.049), SliceScores(1.0, 1.0), True, "within bounds"),
    (SliceScores(0.9, 1.06), SliceScores(1.0, 1.0), False, "old-slice error 1.06 is 6.0%"),
    (SliceScores(0.9), SliceScores(1.0, 1.0), True, "within bounds"),
    (SliceScores(math.nan), SliceScores(1.0), False, "non-finite"),
    (SliceScores(1.0), SliceScores(math.nan), True, "production has non-finite"),
])
def test_decide(cand, prod, promote, why):
    decision = Gate(max_regression=0.02, max_old_regression=0.05).decide(cand, prod)
    assert decision.promote is promote
    assert why in decision.reason


def test_bounds_must_be_non_negative():
    with pytest.raises(ValueError):
        Gate(max_regression=-0.1)
