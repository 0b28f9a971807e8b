"""ItemSide's reference rows: the vectorised take and the packed pickle change nothing."""

from __future__ import annotations

import pickle

import numpy as np

from learning.item_side import ItemSide
from learning.online import OnlineLearner
from stream.schema import Event


def _learn(learner: OnlineLearner, n: int, start: int = 0) -> None:
    for k in range(start, start + n):
        learner.learn_one(Event(f"e{k}", f"u{k % 7}", f"i{k % 11}", "rating",
                                float(1 + k % 5), float(k)))


def _reference_take(side: ItemSide, learner: OnlineLearner) -> dict[str, list[float]]:
    """The per-row take the vectorised one replaced (latents only)."""
    out = {}
    vectors = learner.model._model.i_latents
    for item in learner._dirty_items or ():
        old = side._latents.get(item)
        d = vectors[item] if old is None else vectors[item] - old
        if old is None or np.any(d != 0.0):
            out[item] = d.tolist()
    return out


def test_take_equals_the_row_by_row_difference_and_skips_unchanged_rows() -> None:
    learner = OnlineLearner(seed=3)
    side = ItemSide.of(learner, factors=True)
    _learn(learner, 40)
    want = _reference_take(side, learner)
    assert side.take(learner).latents == want and len(want) == 11  # all new: whole vectors
    _learn(learner, 5, start=40)
    want = _reference_take(side, learner)
    got = side.take(learner).latents
    assert got == want and 0 < len(got) < 11  # only the rows that moved


def test_pickle_packs_the_reference_rows_and_restores_them_equal() -> None:
    learner = OnlineLearner(seed=3)
    side = ItemSide.of(learner, factors=True)
    _learn(learner, 60)
    side.take(learner)
    state = side.__getstate__()
    keys, rows = state["_latents"]
    assert isinstance(rows, np.ndarray) and rows.shape == (len(keys), 10)
    back = pickle.loads(pickle.dumps(learner))
    again = ItemSide.of(back)
    assert again.sent == side.sent and again._biases == side._biases
    assert again._latents.keys() == side._latents.keys()
    for item, vec in side._latents.items():
        assert np.array_equal(again._latents[item], vec)
    # continuing from the restored copy takes what the original takes
    _learn(learner, 9, start=60)
    _learn(back, 9, start=60)
    assert again.take(back) == side.take(learner)


def test_an_unpacked_pickle_of_an_older_version_still_loads() -> None:
    side = ItemSide(factors=True)
    side._latents = {"i": np.ones(3)}
    old = object.__new__(ItemSide)
    old.__setstate__(dict(side.__dict__))  # what pickles before the packing held
    assert np.array_equal(old._latents["i"], np.ones(3))
    empty = pickle.loads(pickle.dumps(ItemSide()))
    assert empty._latents == {}
