"""BiasedMF's side-effect-free predictor: its known-ids path is River's own sum, bit for bit."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.erasure import PURE_PREDICT
from learning.models import make_model


def _layered(m: Any, user: str, item: str) -> float:
    """The predictor as it was before the one-expression path (the reference)."""
    y = m.global_mean.get()
    if user in m.u_biases:
        y += m.u_biases[user]
    if item in m.i_biases:
        y += m.i_biases[item]
    if user in m.u_latents and item in m.i_latents:
        y += np.dot(m.u_latents[user], m.i_latents[item])
    return float(y)


_ids = st.integers(0, 6)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(_ids, _ids, st.floats(0.0, 10.0)), max_size=40),
       st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=20),
       st.integers(0, 3))
def test_equals_layered_and_river(learned: list, asked: list, seed: int) -> None:
    rec = make_model("BiasedMF", seed=seed)
    for u, i, y in learned:
        rec.learn_one(f"u{u}", f"i{i}", y)
    river = rec._model
    pure = PURE_PREDICT[type(river)]
    sizes = (len(river.u_latents), len(river.i_latents), len(river.u_biases))
    for u, i in asked:
        user, item = f"u{u}", f"i{i}"
        got = pure(river, user, item)
        assert got == _layered(river, user, item)
        assert type(got) is float
        if user in river.u_latents and item in river.i_latents:  # River's own, on a copy
            assert got == copy.deepcopy(river).predict_one(user, item)
    assert (len(river.u_latents), len(river.i_latents), len(river.u_biases)) == sizes
