import math

from hypothesis import given, settings
from hypothesis import strategies as st

from learning.online import OnlineLearner
from learning.prequential import Prequential
from stream.schema import Event


def _events(n, seed=0):
    import random

    rng = random.Random(seed)
    return [Event(f"e{k}", f"u{rng.randrange(20)}", f"i{rng.randrange(30)}", "rating",
                  float(rng.randint(1, 5)), float(k)) for k in range(n)]


def test_predict_then_learn_scores_the_prediction_made_before_learning():
    learner = OnlineLearner("BiasedMF", seed=1)
    ev = Event("e", "u", "i", "rating", 4.0, 0.0)
    before = learner.predict_one("u", "i")
    assert learner.learn_one(ev) == before
    assert learner.score().n == 1
    assert math.isclose(learner.score().mae, abs(4.0 - before))


def test_clip_bounds_the_scored_prediction():
    learner = OnlineLearner("Baseline", clip=(1.0, 5.0))
    assert learner.learn_one(Event("e", "u", "i", "rating", 4.0, 0.0)) == 1.0


@settings(max_examples=15, deadline=None)
@given(split=st.integers(min_value=0, max_value=200))
def test_snapshot_restore_continue_equals_uninterrupted(split):
    events = _events(200, seed=5)
    straight = OnlineLearner("BiasedMF", seed=2)
    for ev in events:
        straight.learn_one(ev)
    first = OnlineLearner("BiasedMF", seed=2)
    for ev in events[:split]:
        first.learn_one(ev)
    resumed = OnlineLearner.restore(first.snapshot())
    for ev in events[split:]:
        resumed.learn_one(ev)
    assert resumed.score() == straight.score()
    assert resumed.predict_one("u3", "i4") == straight.predict_one("u3", "i4")


@given(pairs=st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=1,
                      max_size=60), window=st.integers(1, 10))
def test_prequential_matches_direct_formulas(pairs, window):
    p = Prequential(window)
    for y, y_hat in pairs:
        p.update(y, y_hat)
    errs = [y - y_hat for y, y_hat in pairs]
    assert math.isclose(p.rmse, math.sqrt(sum(e * e for e in errs) / len(errs)), rel_tol=1e-9,
                        abs_tol=1e-9)
    assert math.isclose(p.mae, sum(abs(e) for e in errs) / len(errs), rel_tol=1e-9, abs_tol=1e-9)
    recent = errs[-window:]
    assert math.isclose(p.rolling_mae, sum(abs(e) for e in recent) / len(recent), rel_tol=1e-9,
                        abs_tol=1e-9)
