"""The stacked blend: per-segment ridge weights, refit in batches, prequential, picklable."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.blend import DeepView
from learning.foldin import UserVectors
from learning.stacking import StackedBlend, segment_of
from learning.torch_models import DeepRecommender


def _rows(n: int, seed: int) -> list[tuple[int, tuple[float, float], float]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        seg = int(rng.integers(0, 2))
        f = (float(rng.normal()), float(rng.normal()))
        # segment 0 follows the first feature, segment 1 the second plus an offset
        y = f[0] if seg == 0 else 0.5 + 2.0 * f[1]
        out.append((seg, f, y + float(rng.normal()) * 0.01))
    return out


def test_each_segment_gets_its_own_least_squares_weights():
    blend = StackedBlend(2, refit_every=500, ridge=1.0)
    for seg, f, y in _rows(4000, seed=1):
        blend.learn(seg, f, y)
    assert np.allclose(blend.coefficients(0), [0.0, 1.0, 0.0], atol=0.02)
    assert np.allclose(blend.coefficients(1), [0.5, 0.0, 2.0], atol=0.02)
    assert blend.coefficients(5) == pytest.approx(blend.coefficients(9))  # empty: the global


def test_weights_only_change_at_refits_from_earlier_events():
    blend = StackedBlend(2, refit_every=100, first_refit=100)
    rows = _rows(350, seed=2)
    before = [blend.coefficients(0)]
    for k, (seg, f, y) in enumerate(rows):
        blend.learn(seg, f, y)
        if (k + 1) % 100:
            assert blend.coefficients(0) == before[-1], k  # no refit: unchanged
        else:
            before.append(blend.coefficients(0))
    assert blend.refits == 3 and len({tuple(c) for c in before}) == 4


def test_a_pickled_blend_continues_as_an_uninterrupted_one():
    rows = _rows(2500, seed=3)
    a = StackedBlend(2, refit_every=300)
    for seg, f, y in rows[:1234]:
        a.learn(seg, f, y)
    b = pickle.loads(pickle.dumps(a))
    for seg, f, y in rows[1234:]:
        a.learn(seg, f, y)
        b.learn(seg, f, y)
        assert a.predict(seg, f) == b.predict(seg, f)
    assert a.report() == b.report()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**7), st.integers(0, 10**7))
def test_segments_are_in_range_and_monotone_in_the_user_history(n_user, n_item):
    s = segment_of(n_user, n_item)
    assert 0 <= s < 32 and segment_of(n_user + 1, n_item) // 4 >= s // 4


def test_user_vectors_pickle_as_one_matrix_and_continue_alike():
    view = DeepView.of(DeepRecommender(n_factors=4, seed=1))
    vecs = UserVectors(lr=0.1, l2=0.01)
    q = np.arange(4.0)
    for k in range(30):
        vecs.update(view, f"u{k % 7}", q, 1.0)
    clone = pickle.loads(pickle.dumps(vecs))
    for k in range(30):
        vecs.update(view, f"u{k % 5}", q, -0.5)
        clone.update(view, f"u{k % 5}", q, -0.5)
    assert list(clone._vecs) == list(vecs._vecs)  # recency order kept
    assert all(np.array_equal(clone._vecs[u], v) for u, v in vecs._vecs.items())
    assert len(pickle.loads(pickle.dumps(UserVectors()))) == 0


def _drive(blend: StackedBlend, useful: bool, n: int = 6000) -> None:
    rng = np.random.default_rng(0)
    for _ in range(n):
        signal, extra = rng.normal(), rng.normal() * 3.0
        target = signal + (0.8 * extra if useful else 0.0) + rng.normal()
        blend.predict(0, (signal, extra))
        blend.learn(0, (signal, extra), target)


def test_an_optional_feature_that_does_not_pay_is_left_out():
    blend = StackedBlend(2, refit_every=500, halflife=2000.0, optional=(1,))
    _drive(blend, useful=False)
    assert blend.without_optional and blend.coefficients(0)[2] == 0.0
    assert blend.report()["errors"][1] < blend.report()["errors"][0]


def test_an_optional_feature_that_pays_is_kept():
    blend = StackedBlend(2, refit_every=500, halflife=2000.0, optional=(1,))
    _drive(blend, useful=True)
    assert not blend.without_optional and abs(blend.coefficients(0)[2] - 0.8) < 0.05


def test_a_blend_pickled_before_optional_features_loads_with_none():
    blend = StackedBlend(2, refit_every=100)
    _drive(blend, useful=True, n=300)
    state = dict(blend.__dict__)
    for key in ("optional", "_sets", "_errors", "without_optional"):
        del state[key]
    old = StackedBlend.__new__(StackedBlend)
    old.__dict__.update(state)
    again = pickle.loads(pickle.dumps(old))
    assert again.optional == () and not again.without_optional
    _drive(again, useful=True, n=300)
    assert again.refits > blend.refits
