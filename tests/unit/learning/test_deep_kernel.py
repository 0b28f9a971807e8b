"""The compiled deep side of a lifelong event equals the numpy one."""

import copy

import numpy as np
import pytest

from learning import deep_kernel
from learning.blend import DeepView
from learning.deep_kernel import deep_side, deep_side_numpy
from learning.foldin import UserVectors


def _view(rng: np.random.Generator, users: int = 6, items: int = 5, dim: int = 4) -> DeepView:
    return DeepView(3.2, {f"u{k}": k for k in range(users)}, {f"i{k}": k for k in range(items)},
                    rng.normal(size=(users, dim)), rng.normal(size=users),
                    rng.normal(size=(items, dim)), rng.normal(size=items), (1.0, 5.0))


@pytest.mark.parametrize(("lr", "bounds", "max_users"), [
    (0.05, (1.0, 5.0), 1000), (0.0, (1.0, 5.0), 1000), (0.2, (-np.inf, np.inf), 3)])
def test_the_kernel_predicts_and_folds_in_as_numpy(lr, bounds, max_users):
    assert deep_kernel.ENABLED, ("numba is a dependency (pyproject.toml): install it, and "
                                 "run the tests without LIFELONG_NUMBA=0")
    rng = np.random.default_rng(7)
    view = _view(rng)
    fast = UserVectors(lr=lr, l2=0.05, max_users=max_users)
    slow = copy.deepcopy(fast)
    for _ in range(2000):  # known and unknown users (u6, u7) and items (i5, i6)
        user, item = f"u{rng.integers(8)}", f"i{rng.integers(7)}"
        value = float(rng.uniform(1.0, 5.0))
        p_fast = deep_side(view, fast, user, item, value, *bounds)
        p_slow = deep_side_numpy(view, slow, user, item, value, *bounds)
        assert abs(p_fast - p_slow) <= 1e-12
        assert list(fast._vecs) == list(slow._vecs)  # the same users, in the same order
    for user, vec in slow._vecs.items():
        np.testing.assert_allclose(fast._vecs[user], vec, rtol=0, atol=1e-12)
    assert (len(slow) > 0) == (lr > 0)
