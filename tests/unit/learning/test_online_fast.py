"""OnlineLearner.learn_one's direct path equals Recommender's predict and learn, exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.models import Recommender, clip
from learning.online import OnlineLearner
from learning.prequential import Prequential
from stream.schema import Event

events = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 5),
                            st.floats(0.0, 10.0, allow_nan=False)), min_size=1, max_size=60)


def _reference(name: str, evs: list[Event], bounds: tuple[float, float] | None) -> tuple:
    """The path before: Recommender.predict_one (learning.erasure), clip, learn_one."""
    rec, preq, preds = Recommender(name, seed=3), Prequential(1000), []
    for e in evs:
        y = clip(rec.predict_one(e.user_id, e.item_id, e.context), bounds)
        preq.update(e.value, y)
        rec.learn_one(e.user_id, e.item_id, e.value, e.context)
        preds.append(y)
    return preds, preq.score(), rec


@pytest.mark.parametrize("name", ["BiasedMF", "FunkMF", "Baseline", "FMRegressor"])
@settings(max_examples=40, deadline=None)
@given(rows=events, clipped=st.booleans())
def test_learn_one_equals_the_recommender_path(name: str, rows: list, clipped: bool) -> None:
    bounds = (1.0, 5.0) if clipped else None
    evs = [Event(f"e{k}", f"u{u}", f"i{i}", "rating", v, float(k))
           for k, (u, i, v) in enumerate(rows)]
    learner = OnlineLearner(name, seed=3, clip=bounds)
    preds = [learner.learn_one(e) for e in evs]
    ref_preds, ref_score, ref = _reference(name, evs, bounds)
    assert preds == ref_preds
    assert learner.score() == ref_score
    pairs = [(f"u{u}", f"i{i}") for u in range(8) for i in range(7)]  # known and unknown
    assert ([learner.model.predict_one(u, i) for u, i in pairs]
            == [ref.predict_one(u, i) for u, i in pairs])
    state = {k: repr(v) for k, v in vars(learner.model._model).items() if k != "_rng"}
    assert state == {k: repr(v) for k, v in vars(ref._model).items() if k != "_rng"}
    users, items = learner.dirty_rows()
    assert users == {e.user_id for e in evs} and items == {e.item_id for e in evs}
