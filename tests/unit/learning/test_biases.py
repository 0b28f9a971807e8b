import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.biases import BiasModel, History
from learning.blend import DeepView
from learning.foldin import SegmentBlend, UserVectors
from learning.torch_models import DeepRecommender


def test_refit_solves_the_regularised_least_squares():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 30, 2000), rng.integers(0, 40, 2000)
    true_u, true_i = rng.normal(0, 1, 30), rng.normal(0, 1, 40)
    y = 5.0 + true_u[users] + true_i[items] + rng.normal(0, 0.1, 2000)
    model, hist = BiasModel(user_prior=1.0, item_prior=1.0, sweeps=30), History()
    for u, i, v in zip(users, items, y, strict=True):
        hist.add(*model.update(f"u{u}", f"i{i}", float(v)), float(v))
    folded = np.mean([(model.predict(f"u{u}", f"i{i}") - v) ** 2
                      for u, i, v in zip(users, items, y, strict=True)])
    model.refit(hist)
    refit = np.mean([(model.predict(f"u{u}", f"i{i}") - v) ** 2
                     for u, i, v in zip(users, items, y, strict=True)])
    assert refit < folded and refit < 0.02
    # the normal equations hold for every user: sum of residuals = prior * bias
    b_u = {u: model.terms(f"u{u}", "")[0] for u in range(30)}
    res = y - np.array([model.predict(f"u{u}", f"i{i}") for u, i in zip(users, items,
                                                                         strict=True)])
    for u in range(30):
        assert res[users == u].sum() == pytest.approx(b_u[u] * 1.0, abs=0.05)


def test_a_new_user_gets_a_bias_after_one_event_and_history_is_bounded():
    model = BiasModel(user_prior=1.0, item_prior=1.0)
    model.update("a", "x", 8.0)
    model.update("b", "x", 6.0)
    assert model.predict("b", "x") < model.predict("a", "x")
    assert model.counts("a", "x") == (1, 2) and model.counts("new", "new") == (0, 0)
    hist = History(capacity=3)
    for k in range(5):
        hist.add(k, k, float(k))
    _, _, values = hist.arrays()
    assert len(hist) == 3 and sorted(values.tolist()) == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError):
        BiasModel(user_prior=0)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 40), st.floats(1, 5),
                          st.floats(1, 5), st.floats(1, 5)), min_size=1, max_size=200))
def test_segment_blend_stays_within_the_two_predictions_plus_its_offset(rows):
    blend = SegmentBlend(window=20, offset_window=20, warmup=0)
    for n_u, n_i, y, a, b in rows:
        s = blend.segment(n_u, n_i)
        assert 0 <= s < len(blend.weights)
        lo, hi = min(a, b), max(a, b)
        off = float(blend.offsets[s])
        assert lo + off - 1e-9 <= blend.blend(s, a, b) <= hi + off + 1e-9
        blend.update(s, y, a, b)
        assert math.isfinite(blend.offsets[s])


def test_user_vectors_follow_a_user_the_deep_model_never_saw():
    view = DeepView.of(DeepRecommender(n_factors=4, seed=1))
    vecs = UserVectors(lr=2.0, l2=0.0)
    item = next(iter(view.items), None)
    if item is None:  # an untrained model has no items: give it one
        rec = DeepRecommender(n_factors=4, seed=1)
        rec.items.lookup(["i"], now=0.0)
        view, item = DeepView.of(rec), "i"
    errors = []
    for _ in range(60):
        inter, q_i = vecs.interaction(view, "newcomer", item)
        errors.append(abs(0.5 - inter))
        vecs.update(view, "newcomer", q_i, 0.5 - inter)
    assert errors[-1] < 0.5 * errors[0] and len(vecs) == 1
    assert vecs.interaction(view, "newcomer", "unknown item") == (0.0, None)
