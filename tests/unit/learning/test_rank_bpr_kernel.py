"""The compiled BPR step against BPR's numpy reference path (fails, not skips, without numba)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning import rank_bpr_kernel
from learning.rank_bpr import BPR
from stream.synthetic_implicit import ImplicitStream


def _reference(bpr: BPR, user: str, item: int, weight: float) -> None:
    saved = rank_bpr_kernel.step
    rank_bpr_kernel.step = None
    try:
        bpr.learn_one(user, item, weight)
    finally:
        rank_bpr_kernel.step = saved


def test_the_kernel_is_compiled_and_used():
    assert rank_bpr_kernel.ENABLED and rank_bpr_kernel.step is not None
    assert hasattr(rank_bpr_kernel.step, "signatures")  # a numba dispatcher


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 6), st.booleans(),
       st.floats(0.1, 3.0), st.sampled_from(["uniform", "popularity"]))
def test_one_step_equals_numpy_duplicates_and_bias_included(seed, n_neg, bias, weight, sampling):
    rng = np.random.default_rng(seed)
    a = BPR(5, n_negatives=n_neg, sampling=sampling, item_bias=bias, seed=seed, init_std=0.5)
    b = BPR(5, n_negatives=n_neg, sampling=sampling, item_bias=bias, seed=seed, init_std=0.5)
    for _ in range(40):  # a small catalogue: negatives are drawn twice now and then
        user, item = f"u{rng.integers(3)}", int(rng.integers(4))
        a.learn_one(user, item, weight)
        _reference(b, user, item, weight)
        np.testing.assert_allclose(a._user_factors, b._user_factors, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a._items, b._items, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a._bias, b._bias, rtol=1e-12, atol=1e-14)
    assert a._rng.integers(1 << 30) == b._rng.integers(1 << 30)  # the same draws


def test_a_stream_learned_by_the_kernel_scores_as_numpy():
    events = list(ImplicitStream(n_users=80, n_items=150, n_events=3000, drift_at=(), seed=5))
    a, b = BPR(32, sampling="popularity", seed=1), BPR(32, sampling="popularity", seed=1)
    for e in events:
        item = int(e.item_id[1:])
        a.learn_one(e.user_id, item)
        _reference(b, e.user_id, item, 1.0)
    for user in ("u1", "u7", "nobody"):
        np.testing.assert_allclose(a.score_items(user), b.score_items(user), atol=1e-9)
        rows = np.array([0, 3, 9])
        assert a.score_rows(user, rows) == pytest.approx(a.score_items(user)[rows], abs=1e-12)
