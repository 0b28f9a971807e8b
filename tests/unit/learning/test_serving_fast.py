"""The optimised per-event path predicts exactly as the straightforward one it replaced."""

import copy
import pickle
from array import array

import numpy as np

from learning import deep_kernel, serving
from learning.biases import History
from learning.blend import DeepView
from learning.finetune import FineTuner
from learning.foldin import SegmentBlend
from learning.models import Recommender, clip
from learning.serving import LifelongModel
from learning.torch_models import DeepRecommender
from stream.synthetic import SyntheticStream


class _Sums:
    """The per-id state of the reference step, in dicts keyed by id (the layout before rows)."""

    def __init__(self) -> None:
        self.recent_user: dict[str, float] = {}
        self.recent_item: dict[str, float] = {}
        self.user_sums: dict[str, list[float]] = {}
        self.item_sums: dict[str, float] = {}
        self.spread_sum, self.spread_n = 0.0, 0


def _reference_step(m: LifelongModel, user: str, item: str, value: float,
                    ref: _Sums) -> float:
    """LifelongModel.step written straightforwardly: each term looked up on its own."""
    b_u, b_i = m.biases.terms(user, item)
    segment = m.weights.segment(*m.biases.counts(user, item))
    p_bias = clip(m.biases.mu + b_u + b_i, m.clip)
    p_online = clip(m.online.predict_one(user, item), m.clip)
    p_deep, q_i = p_bias, None
    if m._serving is not None:
        view, vecs = m._serving[0], m._serving[1]
        _, q_i = view.item_terms(item)
        row = view.users.get(user)
        base = view.mu + view.item_terms(item)[0] + (
            float(view.user_bias[row]) if row is not None else 0.0)
        p_deep = clip(base + vecs.interaction(view, user, item)[0], m.clip)
    n_u, n_i = m.biases.counts(user, item)
    mean_square = ref.spread_sum / ref.spread_n if ref.spread_n else 0.0
    squares, item_biases = ref.user_sums.get(user, (0.0, 0.0))
    spread = np.sqrt((squares + m.spread_prior * mean_square)
                     / (n_u + m.spread_prior)) - np.sqrt(mean_square)
    features = (p_online - p_bias, p_deep - p_bias, ref.recent_user.get(user, 0.0),
                ref.recent_item.get(item, 0.0), float(spread), item_biases / (n_u + 1),
                ref.item_sums.get(item, 0.0) / (n_i + 1),
                float(b_i * spread / np.sqrt(mean_square)) if mean_square else 0.0)
    y_hat = clip(p_bias + m.weights.predict(segment, features), m.clip)
    m.weights.learn(segment, features, value - p_bias)
    m.online.learn_one(user, item, value)
    if m._serving is not None:
        vec = m._serving[1]._vecs.pop(user, None)
        if q_i is not None:
            vec = np.zeros(m._serving[0].dim) if vec is None else vec
            m._serving[1]._vecs[user] = vec + m.fold_lr * ((value - p_deep) * q_i
                                                            - m.fold_l2 * vec)
        elif vec is not None:
            m._serving[1]._vecs[user] = vec
    for recent, key, rate in ((ref.recent_user, user, m.user_recency),
                              (ref.recent_item, item, m.item_recency)):
        recent[key] = (1 - rate) * recent.get(key, 0.0) + rate * (value - p_bias)
    ref.user_sums[user] = [squares + (value - p_bias) ** 2, item_biases + b_i]
    ref.item_sums[item] = ref.item_sums.get(item, 0.0) + b_u
    ref.spread_sum += (value - p_bias) ** 2
    ref.spread_n += 1
    m.biases.update(user, item, value)
    m.events_seen += 1
    return y_hat


def test_fast_step_equals_the_reference_step_on_a_seeded_stream():
    deep = DeepRecommender(n_factors=4, clip=(1.0, 5.0), seed=3)
    events = list(SyntheticStream(n_events=1500, n_users=60, n_items=80, drift_at=(), seed=5))
    head = events[:400]
    FineTuner(deep, device="cpu", epochs_per_round=2, seed=0).train_full(
        [e.user_id for e in head], [e.item_id for e in head], [e.value for e in head],
        [e.ts for e in head])
    fast = LifelongModel(Recommender("BiasedMF", seed=1), clip=(1.0, 5.0), blend_refit=200)
    slow = copy.deepcopy(fast)
    hist, ref = History(), _Sums()
    for k, ev in enumerate(events):
        if k == 300:  # a deep model arrives part way (user vectors start then)
            view = DeepView.of(deep)
            fast.set_deep(view)
            slow.set_deep(view)
        if k == 900:  # and a refit restates the biases
            fast.biases.refit(hist)
            slow.biases.refit(hist)
        served = fast.predict_one(ev.user_id, ev.item_id)
        y_fast = fast.step(ev.user_id, ev.item_id, ev.value)[0]
        y_slow = _reference_step(slow, ev.user_id, ev.item_id, ev.value, ref)
        assert abs(y_fast - y_slow) <= 1e-9 and abs(served - y_fast) <= 1e-9, k
        hist.add(*fast.last_rows, ev.value)
    assert fast.weights.refits == slow.weights.refits > 1  # the blend was refit on the way
    for user, (squares, item_biases) in ref.user_sums.items():  # the rows hold the same sums
        assert fast.user_state(user) == (ref.recent_user[user], squares, item_biases)
    for item, rater_biases in ref.item_sums.items():
        assert fast.item_state(item) == (ref.recent_item[item], rater_biases)
    assert (fast._spread_sum, fast._spread_n) == (ref.spread_sum, ref.spread_n)


def _dict_layout(model: LifelongModel) -> dict:
    """``model``'s state as a release before the per-row lists pickled it (dicts by id)."""
    state = pickle.loads(pickle.dumps(model)).__dict__
    users = {u: r for u, r in model.biases._users.items()}
    items = {i: r for i, r in model.biases._items.items()}
    state["_recent_user"] = {u: state["_user_recent"][r] for u, r in users.items()}
    state["_user_sums"] = {u: [state["_user_squares"][r], state["_user_item_bias"][r]]
                           for u, r in users.items()}
    state["_recent_item"] = {i: state["_item_recent"][r] for i, r in items.items()}
    state["_item_sums"] = {i: state["_item_rater_bias"][r] for i, r in items.items()}
    for key in ("_user_recent", "_user_squares", "_user_item_bias", "_item_recent",
                "_item_rater_bias"):
        del state[key]
    return state


def test_a_lifelong_model_pickled_with_sums_by_id_loads_and_continues_the_same():
    deep = DeepRecommender(n_factors=4, clip=(1.0, 5.0), seed=3)
    events = list(SyntheticStream(n_events=900, n_users=50, n_items=60, drift_at=(), seed=6))
    FineTuner(deep, device="cpu", epochs_per_round=1, seed=0).train_full(
        [e.user_id for e in events[:300]], [e.item_id for e in events[:300]],
        [e.value for e in events[:300]], [e.ts for e in events[:300]])
    model = LifelongModel(Recommender("BiasedMF", seed=1), clip=(1.0, 5.0), blend_refit=100)
    model.set_deep(DeepView.of(deep))
    for ev in events[:500]:
        model.step(ev.user_id, ev.item_id, ev.value)
    model.forget_user(events[0].user_id)  # an erased user: no row, no sums
    old = LifelongModel.__new__(LifelongModel)
    old.__dict__.update(_dict_layout(model))
    again = pickle.loads(pickle.dumps(old))
    assert "_user_sums" not in again.__dict__ and "_recent_user" not in again.__dict__
    for ev in events[500:]:
        assert again.predict_one(ev.user_id, ev.item_id) == model.predict_one(ev.user_id,
                                                                              ev.item_id)
        assert again.step(ev.user_id, ev.item_id, ev.value) == model.step(
            ev.user_id, ev.item_id, ev.value)


def test_segment_blend_loads_a_pickle_of_the_numpy_layout():
    blend = SegmentBlend(window=10, warmup=0)
    for k in range(50):
        blend.update(k % 3, 4.0, 3.5, 3.0)
    state = dict(blend.__dict__)
    state["offsets"] = np.array(state.pop("_offsets"))
    state["_n"] = np.array(state.pop("_counts"), dtype=np.int64)
    old = SegmentBlend.__new__(SegmentBlend)
    old.__setstate__(state)
    again = pickle.loads(pickle.dumps(old))
    assert again.blend(1, 3.5, 3.0) == blend.blend(1, 3.5, 3.0)
    assert again.offsets.tolist() == blend.offsets.tolist()


def test_a_lifelong_model_pickled_before_the_stacked_blend_loads_and_serves():
    model = LifelongModel(Recommender("BiasedMF", seed=1), clip=(1.0, 5.0))
    for ev in SyntheticStream(n_events=300, drift_at=(), seed=2):
        model.step(ev.user_id, ev.item_id, ev.value)
    state = _dict_layout(model)  # the format-1 layout: a SegmentBlend and deep weights
    for key in ("_recent_user", "_recent_item", "user_recency", "item_recency",
                "spread_prior", "_user_sums", "_item_sums", "_spread_sum", "_spread_n"):
        del state[key]
    state["weights"], state["deep_weights"] = SegmentBlend(segments=8), []
    old = LifelongModel.__new__(LifelongModel)
    old.__dict__.update(state)
    again = pickle.loads(pickle.dumps(old))
    assert again.weights.refits == 0 and again.config()["user_recency"] == 0.3
    assert again.weights.n_features == LifelongModel.N_FEATURES
    assert again.predict_one("u1", "i1") == clip(again.online.predict_one("u1", "i1"),
                                                 (1.0, 5.0))  # River alone until a refit
    again.step("u1", "i1", 4.0)
    assert again.events_seen == 301


def test_history_keeps_the_last_events_as_arrays():
    hist = History(capacity=3)
    for k in range(5):
        hist.add(k, 10 + k, float(k))
    users, items, values = hist.arrays()
    assert len(hist) == 3 and sorted(users.tolist()) == [2, 3, 4]
    assert sorted(items.tolist()) == [12, 13, 14] and values.dtype == np.float32


def test_a_lifelong_model_pickled_before_the_implicit_features_predicts_as_before():
    model = LifelongModel(Recommender("BiasedMF", seed=1), clip=(1.0, 5.0), blend_refit=100)
    events = list(SyntheticStream(n_events=700, drift_at=(), seed=4))
    for ev in events[:500]:
        model.step(ev.user_id, ev.item_id, ev.value)
    state = _dict_layout(model)  # the format-2 layout: 4 features
    for key in ("spread_prior", "_user_sums", "_item_sums", "_spread_sum", "_spread_n"):
        del state[key]
    blend = state["weights"]
    for key in ("optional", "_sets", "_errors", "without_optional"):
        del blend.__dict__[key]
    blend.n_features = 4
    blend._coef = [c[:5] for c in blend._coef]
    keep = [0, 1, 2, 3, 4, 9]  # intercept, the 4 old features, target
    blend._moments = blend._moments[:, keep][:, :, keep]
    rows = np.frombuffer(blend._pending, dtype=np.float64).reshape(-1, 10)
    blend._pending = array("d", np.delete(rows, [5, 6, 7, 8], axis=1).ravel().tolist())
    expected = [blend.predict(s, (0.5, -0.2, 0.1, 0.3)) for s in range(blend.n_segments)]
    old = LifelongModel.__new__(LifelongModel)
    old.__dict__.update(state)
    again = pickle.loads(pickle.dumps(old))
    assert again.weights.n_features == 8 and again.implicit("u1", "i1", 0, 0) == (0, 0, 0, 0)
    assert [again.weights.predict(s, (0.5, -0.2, 0.1, 0.3, 1.0, 2.0, -1.0, 0.5))
            for s in range(blend.n_segments)] == expected  # weight 0 until the next refit
    refits = again.weights.refits
    for ev in events[500:]:
        again.step(ev.user_id, ev.item_id, ev.value)
    assert again.weights.refits > refits and again.events_seen == 700


def test_the_compiled_step_equals_the_numpy_path(monkeypatch):
    """LifelongModel.step with the deep kernel inline, and with LIFELONG_NUMBA=0's path."""
    assert deep_kernel.ENABLED, "numba is a dependency (pyproject.toml): install it"
    deep = DeepRecommender(n_factors=6, clip=(1.0, 5.0), seed=2)
    events = list(SyntheticStream(n_events=2500, n_users=80, n_items=90, drift_at=(), seed=8))
    FineTuner(deep, device="cpu", epochs_per_round=1, seed=0).train_full(
        [e.user_id for e in events[:600]], [e.item_id for e in events[:600]],
        [e.value for e in events[:600]], [e.ts for e in events[:600]])
    view = DeepView.of(deep)
    outputs = []
    for compiled in (True, False):
        if not compiled:  # what LIFELONG_NUMBA=0 (or no numba) runs
            monkeypatch.setattr(deep_kernel, "kernel", None)
            monkeypatch.setattr(serving, "deep_kernel", None)
        model = LifelongModel(Recommender("BiasedMF", seed=1), clip=(1.0, 5.0),
                              blend_refit=300)
        out = []
        for k, ev in enumerate(events):
            if k == 200:
                model.set_deep(view)
            out.append(model.step(ev.user_id, ev.item_id, ev.value))
        outputs.append((out, model))
    (fast, m_fast), (slow, m_slow) = outputs
    assert len(m_fast.fold) == len(m_slow.fold) > 0
    for k, (a, b) in enumerate(zip(fast, slow, strict=True)):
        assert all(abs(x - y) <= 1e-12 for x, y in zip(a, b, strict=True)), k
    assert m_fast.weights.refits == m_slow.weights.refits > 2
