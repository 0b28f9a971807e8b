"""The rolling figures summed in C equal the per-element sums they replaced, bit for bit."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from learning.prequential import Prequential

_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_floats, _floats), max_size=60), st.integers(1, 20))
def test_rolling_equals_generator_sums(pairs: list[tuple[float, float]], window: int) -> None:
    p = Prequential(window)
    for y, y_hat in pairs:
        p.update(y, y_hat)
        r = list(p._recent)
        assert p.rolling_rmse == math.sqrt(sum(e * e for e in r) / len(r))
        assert p.rolling_mae == sum(abs(e) for e in r) / len(r)
    if not pairs:
        assert math.isnan(p.rolling_rmse) and math.isnan(p.rolling_mae)
