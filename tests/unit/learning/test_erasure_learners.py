"""Erasure in the rating blend, the ranking learners and the slow learner; pure predictions."""

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learning import weights
from learning.erasure import Forgettable, forget_finetuner_user, predict_unchanged
from learning.finetune import FineTuner
from learning.lifelong import LifelongLearner
from learning.models import MODEL_NAMES, make_model
from learning.ranking_learner import RANKING_MODELS, RankingLearner
from learning.replay import ReplayBuffer
from learning.torch_models import DeepRecommender
from stream.schema import Event

TARGET = "target-user-7f3a"
COLD = "never-seen-user"


def _events(n, seed=0, kind="rating"):
    rng = np.random.default_rng(seed)
    users = [TARGET] + [f"other{k}" for k in range(9)]
    return [Event(f"e{k}", users[int(rng.integers(len(users)))], f"i{int(rng.integers(20))}",
                  kind, float(rng.integers(1, 6)) if kind == "rating" else 1.0, float(k) * 60)
            for k in range(n)]


def _lifelong():
    deep = DeepRecommender(n_factors=4, clip=(1.0, 5.0), seed=0)
    learner = LifelongLearner(clip=(1.0, 5.0), round_every=400, refit_every=300,
                              finetuner=FineTuner(deep, device="cpu", epochs_per_round=1))
    for ev in _events(1200):
        learner.learn_one(ev)
    return learner


def test_the_rating_blend_forgets_everywhere_and_predicts_like_a_cold_user():
    learner = _lifelong()
    assert len(learner.rounds) == 3 and learner.deep is not None
    assert TARGET in learner.finetuner.recommender.users
    assert isinstance(learner, Forgettable)
    removed = learner.forget_user(TARGET)
    assert removed > 0 and learner.forget_user(TARGET) == 0
    items = [f"i{k}" for k in range(20)] + ["unknown-item"]
    assert [learner.predict_one(TARGET, i) for i in items] == \
        [learner.predict_one(COLD, i) for i in items]
    published = pickle.dumps(learner.serving())
    assert TARGET.encode() not in published
    # the slow learner: id table, published weights, replay buffer, old slices, pending batch
    rec = learner.finetuner.recommender
    assert TARGET not in rec.users and TARGET.encode() not in weights.dump(rec)
    assert TARGET not in {u for _, s, _ in learner.forgetting._slices for u in s.users}
    assert TARGET not in learner._batch.fresh_samples.users + learner._batch.held.users
    prod = learner.store.production()
    assert prod is not None and TARGET not in prod.users
    assert rec.predict_one(TARGET, "i1") == rec.predict_one(COLD, "i1")
    # it keeps learning afterwards, and a returning user starts cold
    for ev in _events(300, seed=3):
        learner.learn_one(ev)
    assert np.isfinite(learner.score().rmse)


def test_the_served_blend_forgets_too():
    model = _lifelong().serving()
    model.forget_user(TARGET)
    assert model.predict_one(TARGET, "i3") == model.predict_one(COLD, "i3")
    assert model.history(TARGET) == 0


@pytest.mark.parametrize("name", sorted(RANKING_MODELS))
def test_every_ranker_forgets_and_ranks_the_user_like_a_cold_one(name):
    learner = RankingLearner(name, seed=3)
    n = 1200 if name.startswith("deep") else 800  # the deep part trains its first round at 1,000
    for ev in _events(n, kind="click"):
        learner.learn_one(ev)
    for item in ("i3", "i7"):  # shown and not taken (the impression join): per-user memory
        assert learner.learn_negative(TARGET, item, ts=n * 60.0)
    before = learner.score_items(TARGET)
    assert learner.seen_items(TARGET).size
    assert learner.forget_user(TARGET) > 0 and learner.forget_user(TARGET) == 0
    after = learner.score_items(TARGET)
    assert after.tolist() == learner.score_items(COLD).tolist()
    assert learner.seen_items(TARGET).size == 0
    assert TARGET.encode() not in pickle.dumps(learner)
    if name not in ("popularity", "decayed-popularity"):
        assert before.tolist() != after.tolist()  # it was personal before
    for ev in _events(200, seed=5, kind="click"):  # and keeps learning
        learner.learn_one(ev)
    assert learner.score().n > 0


def test_the_finetuner_forgets_rows_optimizer_state_and_replay_samples():
    rec = DeepRecommender(n_factors=4, clip=(1.0, 5.0), seed=1)
    tuner = FineTuner(rec, device="cpu", epochs_per_round=2)
    buf = ReplayBuffer(500, recent_window=50, seed=0)
    evs = _events(600)
    for start in (0, 300):
        chunk = evs[start:start + 300]
        tuner.round([e.user_id for e in chunk], [e.item_id for e in chunk],
                    [e.value for e in chunk], [e.ts for e in chunk], buf)
    row = rec.users.lookup([TARGET], now=0.0, add=False)[0]
    assert row >= 0
    assert forget_finetuner_user(tuner, TARGET, buffer=buf) > 1
    snap = buf.snapshot()
    assert row not in snap["reservoir.user_row"].tolist() + snap["recent.user_row"].tolist()
    assert TARGET.encode() not in weights.dump(rec)
    assert rec.predict_one(TARGET, "i2") == rec.predict_one(COLD, "i2")
    moments = [t for opt in tuner._opts for t in opt.state.get(rec.module.user_table, {}).values()
               if isinstance(t, torch.Tensor) and t.dim() > 0]
    assert moments and all(float(t[row].abs().sum()) == 0.0 for t in moments)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(MODEL_NAMES), st.integers(0, 2**16), st.integers(1, 40))
def test_predicting_unknown_ids_changes_nothing_and_learning_stays_identical(name, seed, n):
    """Asking for strangers adds no row; a learner that also predicts learns bit-identically."""
    rng = np.random.default_rng(seed)
    asking, quiet = make_model(name, seed=seed), make_model(name, seed=seed)
    for k in range(n):
        u, i, y = f"u{rng.integers(5)}", f"i{rng.integers(5)}", float(rng.integers(1, 6))
        frozen = pickle.dumps(asking._model)
        asking.predict_one(f"stranger{k}", i)
        asking.predict_one(u, f"unknown{k}")
        assert pickle.dumps(asking._model) == frozen
        p_asked = asking.predict_one(u, i)  # the learner's predict-before-learn
        asking.learn_one(u, i, y)
        quiet.learn_one(u, i, y)
        assert np.isfinite(p_asked)
        river = (asking._model.predict_one(asking._x(u, i, None)) if asking._features
                 else asking._model.predict_one(u, i))  # known ids: River inserts nothing
        assert asking.predict_one(u, i) == river  # exactly River's figure
    assert _state(asking) == _state(quiet)


def _state(rec):
    # River's Baseline draws nothing but seeds its unused _rng from the OS: leave it out
    return pickle.dumps({k: v for k, v in vars(rec._model).items() if k != "_rng"})


def test_known_ids_predict_exactly_as_river():
    rec = make_model("BiasedMF", seed=2)
    for k in range(50):
        rec.learn_one(f"u{k % 4}", f"i{k % 7}", float(k % 5 + 1))
    river = rec._model
    assert predict_unchanged(river, "u1", "i3") == river.predict_one("u1", "i3")
    cold = predict_unchanged(river, "nobody", "i3")
    assert cold == pytest.approx(river.global_mean.get() + river.i_biases["i3"])
