"""A publish reads the changed rows once: the finite check's read serves the delta."""

import random

import numpy as np

from learning import deltas
from learning.online import OnlineLearner
from stream.schema import Event


def _learn(learner, start, n, seed=1):
    rng = random.Random(seed + start)
    for k in range(start, start + n):
        learner.learn_one(Event(f"e{k}", f"u{rng.randrange(40)}", f"i{rng.randrange(15)}",
                                "rating", float(rng.randint(1, 5)), float(k)))


def _fresh(learner):
    deltas._TAKEN.pop(learner, None)
    return deltas.take_delta(learner)


def test_the_checked_rows_are_the_delta_and_never_stale():
    learner = OnlineLearner("BiasedMF", seed=3)
    _learn(learner, 0, 200)
    assert deltas.changed_non_finite(learner) is None and learner in deltas._TAKEN
    reused = deltas.take_delta(learner)
    assert learner not in deltas._TAKEN  # one use
    assert reused == _fresh(learner)
    deltas.changed_non_finite(learner)
    _learn(learner, 200, 1)  # learned after the check: the kept rows are stale, not used
    assert deltas.take_delta(learner) == _fresh(learner)
    deltas.changed_non_finite(learner)
    learner.predict_one("someone new", "i1")  # a new row (River inserts unknown ids)
    assert deltas.take_delta(learner) == _fresh(learner)
    learner.clear_dirty()
    _learn(learner, 300, 50)
    deltas.changed_non_finite(learner)
    users, items = learner.dirty_rows()
    deltas.take_delta(learner, (users | {"u1"}, items))  # other rows: not from the check
    assert learner in deltas._TAKEN


def test_a_non_finite_row_is_named_and_nothing_is_kept():
    learner = OnlineLearner("BiasedMF", seed=3)
    _learn(learner, 0, 50)
    user = sorted(learner.dirty_rows()[0])[0]
    learner.model._model.u_latents[user][1] = np.inf
    assert deltas.changed_non_finite(learner) == (
        f"parameter model.u_latents[{user!r}] is not finite")
    assert learner not in deltas._TAKEN
