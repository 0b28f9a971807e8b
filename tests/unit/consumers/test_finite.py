"""The non-finite walk: its vectorised fast path finds the same paths as the element walk."""

import numpy as np

from consumers.finite import non_finite


class _Model:
    def __init__(self) -> None:
        self.sums = [0.5] * 1000
        self.recent = {f"u{k}": 0.1 * k for k in range(1000)}
        self.mixed = [1, 2.0, "x", None]
        self.arrays = {"a": np.ones(3)}


def test_float_lists_and_dicts_are_checked_and_the_bad_entry_named():
    m = _Model()
    assert non_finite(m) is None
    m.sums[417] = float("inf")
    assert non_finite(m) == ".sums[417]"
    m.sums[417] = 0.0
    m.recent["u9"] = float("nan")
    assert non_finite(m) == ".recent['u9']"
    m.recent["u9"] = 0.0
    m.mixed[1] = float("-inf")  # not all floats: the element walk
    assert non_finite(m) == ".mixed[1]"
    m.mixed[1] = 2.0
    m.arrays["a"][1] = np.nan
    assert non_finite(m) == ".arrays['a']"
