import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.blend import BlendWeights, DeepView, FoldIn
from learning.experiment import forgetting_experiment, verdict
from learning.finetune import FineTuner
from learning.lifelong import LifelongLearner
from learning.serving import LifelongModel
from learning.torch_models import DeepRecommender
from stream.synthetic import SyntheticStream


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 5), st.floats(1, 5), st.floats(1, 5)), min_size=5,
                max_size=200))
def test_blend_weight_stays_convex(triples):
    bw = BlendWeights(window=20)
    for y, a, b in triples:
        bw.update(y, a, b)
        assert 0.0 <= bw.weight <= 1.0
        lo, hi = min(a, b), max(a, b)
        assert lo - 1e-9 <= bw.blend(a, b) <= hi + 1e-9


def test_blend_prefers_the_better_component_and_is_never_much_worse():
    rng = np.random.default_rng(0)
    bw = BlendWeights(window=200)
    sq_blend = sq_a = sq_b = 0.0
    for _ in range(5000):
        y = rng.normal()
        a, b = y + rng.normal(0, 0.3), y + rng.normal(0, 1.0)
        p = bw.blend(a, b)
        sq_blend, sq_a, sq_b = sq_blend + (y - p) ** 2, sq_a + (y - a) ** 2, sq_b + (y - b) ** 2
        bw.update(y, a, b)
    assert bw.weight > 0.8
    assert sq_blend <= 1.05 * min(sq_a, sq_b)


def test_fold_in_follows_a_burst_for_a_user_the_deep_model_never_saw():
    deep = DeepRecommender(n_factors=4, clip=(1.0, 5.0), seed=0)
    users = [f"u{k}" for k in range(50)]
    items = [f"i{k}" for k in range(50)]
    FineTuner(deep, device="cpu", batch_size=64).train_full(
        users * 4, items * 4, np.full(200, 3.0, dtype=np.float32), np.arange(200.0), epochs=3)
    view, fold = DeepView.of(deep), FoldIn(lr=0.1)
    errors = [abs(fold.update(view, "burst-user", f"i{k % 50}", 5.0)) for k in range(60)]
    assert np.mean(errors[-10:]) < 0.5 * np.mean(errors[:10])
    assert len(fold) == 1
    fold.clear()
    assert view.predict("burst-user", "i1", fold) == view.predict("burst-user", "i1")


def test_lifelong_rounds_blend_and_pickle_without_the_trainer():
    deep = DeepRecommender(n_factors=8, clip=(1.0, 5.0), seed=0)
    learner = LifelongLearner(clip=(1.0, 5.0), round_every=2000,
                              finetuner=FineTuner(deep, device="cpu", batch_size=256))
    stream = SyntheticStream(n_users=200, n_items=200, n_events=8000, drift_at=(4000,), seed=4)
    for ev in stream:
        y_hat = learner.learn_one(ev)
        assert 1.0 <= y_hat <= 5.0
    assert len(learner.rounds) == 4
    scores = learner.component_scores()
    assert scores["deep"].n == 8000  # the bias side predicts from the first event
    assert not math.isnan(learner.bwt())
    assert learner.forgetting.matrix.shape == (4, 4)
    clone = pickle.loads(pickle.dumps(learner.serving()))  # what is published
    assert isinstance(clone, LifelongModel) and not hasattr(clone, "finetuner")
    assert clone.predict_one("u1", "i1") == learner.predict_one("u1", "i1")


def test_lifelong_without_finetuner_blends_river_with_biases_until_given_a_deep_model():
    learner = LifelongLearner(clip=(1.0, 5.0), refit_every=200)
    events = list(SyntheticStream(n_events=500, drift_at=(), seed=1))
    for ev in events:
        learner.learn_one(ev)
    assert learner.deep is None and learner.model.biases.refits == 2
    assert learner.component_scores()["deep"].n == 500
    before = learner.predict_one("u1", "i1")
    learner.set_deep(DeepRecommender(n_factors=4, clip=(1.0, 5.0)), version=7)
    assert learner.deep_version == 7
    # an untrained deep model's interaction is not trusted until it earns it
    assert learner.predict_one("u1", "i1") == before
    learner.learn_one(events[0])
    assert learner.model.weights._seen == 501


def test_replay_forgets_at_least_half_less_than_no_replay_within_two_percent():
    results = forgetting_experiment(n_events=30_000, regimes=3, n_users=400, n_items=500,
                                    epochs=5, seed=0)
    ok, why = verdict(results)
    assert ok, why
    assert results["no_replay"]["bwt"] > 0.02  # the setting really makes it forget


def test_verdict_refuses_when_nothing_was_forgotten():
    flat = {"recent": 0.5, "old": 0.5, "bwt": -0.01, "seconds": 1.0}
    ok, why = verdict({"no_replay": flat, "replay": flat, "full_retrain": flat})
    assert not ok and "no forgetting" in why
    with pytest.raises(ValueError, match="at least 2 regimes"):
        forgetting_experiment(regimes=1)


def test_round_growth_spaces_rounds_in_proportion_to_the_history():
    deep = DeepRecommender(n_factors=4, clip=(1.0, 5.0), seed=0)
    learner = LifelongLearner(clip=(1.0, 5.0), round_every=200, round_growth=0.5,
                              finetuner=FineTuner(deep, device="cpu", seed=0))
    seen = []
    for ev in SyntheticStream(n_events=2000, drift_at=(), seed=4):
        before = len(learner.rounds)
        learner.learn_one(ev)
        if len(learner.rounds) > before:
            seen.append(learner.events_seen)
    # 200, then every max(200, half the history): 400, 600, 900, 1350
    assert seen == [200, 400, 600, 900, 1350]
    with pytest.raises(ValueError):
        LifelongLearner(round_growth=-1.0)


def test_round_backoff_spaces_rounds_while_the_blend_leaves_the_deep_model_out():
    deep = DeepRecommender(n_factors=4, clip=(1.0, 5.0), seed=0)
    learner = LifelongLearner(clip=(1.0, 5.0), round_every=100, round_backoff=4,
                              finetuner=FineTuner(deep, device="cpu", seed=0))
    seen = []
    events = list(SyntheticStream(n_events=2400, drift_at=(), seed=4))
    for k, ev in enumerate(events):
        # the blend's choice, forced: with the deep model up to 300, without it to 2000
        learner.model.weights.without_optional = 300 <= k < 2000
        before = len(learner.rounds)
        learner.learn_one(ev)
        if len(learner.rounds) > before:
            seen.append(learner.events_seen)
    # every 100 while used; then 1, 2, 4, 4 ... triggers apart; every 100 again after 2000
    assert seen == [100, 200, 300, 400, 600, 1000, 1400, 1800, 2100, 2200, 2300, 2400]
    assert learner.skipped_rounds == 24 - len(seen)
    # a round after skipped triggers trains on the events since the last trigger only
    assert learner.rounds[5].fresh + learner.rounds[5].held_out == 100
    with pytest.raises(ValueError):
        LifelongLearner(round_backoff=0)
