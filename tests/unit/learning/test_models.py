import math
import pickle

import pytest

from learning.errors import ConfigurationError
from learning.models import MODEL_NAMES, make_model


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_learns_predicts_and_pickles(name):
    rec = make_model(name, seed=7)
    ratings = [("u1", "i1", 5.0), ("u2", "i1", 1.0), ("u1", "i2", 4.0)] * 30
    first = rec.predict_one("u1", "i1")
    for u, i, y in ratings:
        rec.learn_one(u, i, y)
    after = rec.predict_one("u1", "i1")
    assert math.isfinite(first) and math.isfinite(after)
    # learning moved the prediction towards the observed rating
    assert abs(after - 5.0) < abs(first - 5.0)
    clone = pickle.loads(pickle.dumps(rec))
    assert clone.predict_one("u2", "i1") == rec.predict_one("u2", "i1")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_same_predictions(name):
    a, b = make_model(name, seed=3), make_model(name, seed=3)
    for k in range(50):
        a.learn_one(f"u{k % 5}", f"i{k % 7}", float(k % 5 + 1))
        b.learn_one(f"u{k % 5}", f"i{k % 7}", float(k % 5 + 1))
    assert a.predict_one("u1", "i3") == b.predict_one("u1", "i3")


def test_unknown_model_and_bad_params_are_named():
    with pytest.raises(ConfigurationError, match='unknown model "X"'):
        make_model("X")
    with pytest.raises(ConfigurationError, match='bad parameters for model "BiasedMF"'):
        make_model("BiasedMF", n_factorz=3)
