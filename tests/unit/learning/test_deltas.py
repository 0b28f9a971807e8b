import pickle
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.deltas import apply_delta, decode, delta_capable, encode, take_delta
from learning.online import OnlineLearner
from stream.schema import Event


def _events(n, seed, users=15, items=25):
    rng = random.Random(seed)
    return [Event(f"e{k}", f"u{rng.randrange(users)}", f"i{rng.randrange(items)}", "rating",
                  float(rng.randint(1, 5)), float(k)) for k in range(n)]


def _state(learner):
    """Everything learned, as comparable data (rows, counters, RNGs, scores)."""
    river = learner.model._model
    out = {"events": learner.events_seen, "score": learner.score(),
           "recent": list(learner._preq._recent)}
    for name, value in vars(river).items():
        if name.endswith(("biases", "latents")):
            out[name] = {k: np.asarray(v).tolist() for k, v in sorted(value.items())}
        elif name.endswith("optimizer"):
            out[name] = value.n_iterations
    for init in ("latent_initializer", "initializer"):
        if hasattr(river, init):
            state = getattr(river, init)._rng.get_state()
            out[init] = (state[1].tolist(), state[2:])
    out["rng"] = river._rng.getstate()
    if hasattr(river, "global_mean"):
        out["mean"] = (river.global_mean.n, river.global_mean._mean)
    return out


@settings(max_examples=25, deadline=None)
@given(model=st.sampled_from(["BiasedMF", "FunkMF"]),
       cuts=st.lists(st.integers(0, 300), max_size=6),
       asks=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40), st.integers(0, 40)),
                     max_size=8),
       erase=st.one_of(st.none(), st.tuples(st.integers(0, 300), st.integers(0, 20))))
def test_base_plus_deltas_equals_the_uninterrupted_learner(model, cuts, asks, erase):
    """For any stream, publish points, predictions of unknown ids and an erasure:
    base + deltas restores the learner, and continuing it equals the uninterrupted run."""
    events = _events(300, seed=len(cuts) * 7 + 1)
    straight = OnlineLearner(model, seed=4)
    base = None
    replica = None
    cuts_set = set(cuts)
    ask_at = {}
    for at, u, i in asks:
        ask_at.setdefault(at, []).append((f"u{u}", f"i{i}"))
    for k, ev in enumerate(events):
        if k == 0:
            replica = OnlineLearner.restore(straight.snapshot())  # the base, empty
            straight.clear_dirty()
        for user, item in ask_at.get(k, []):
            straight.predict_one(user, item)  # may insert a row and draw from the RNG
        if erase is not None and erase[0] == k:
            straight.forget_user(f"u{erase[1]}")
        straight.learn_one(ev)
        if k in cuts_set:  # a version: a delta over the previous one, through the bytes
            apply_delta(replica, decode(encode(take_delta(straight))))
            straight.clear_dirty()
            base = _state(replica)
            assert base == _state(straight)
    apply_delta(replica, decode(encode(take_delta(straight))))
    assert _state(replica) == _state(straight)
    for ev in _events(80, seed=99, users=45, items=45):  # continue both, new ids too
        assert replica.learn_one(ev) == straight.learn_one(ev)
    assert replica.predict_one("u44", "i2") == straight.predict_one("u44", "i2")
    assert _state(replica) == _state(straight)


def test_delta_holds_only_the_touched_rows_and_no_pickle():
    learner = OnlineLearner("BiasedMF", seed=1)
    for ev in _events(500, seed=1, users=200, items=50):
        learner.learn_one(ev)
    learner.clear_dirty()
    for ev in _events(10, seed=2, users=200, items=50):
        learner.learn_one(ev)
    delta = take_delta(learner)
    users, items = learner.dirty_rows()
    assert set(delta.tables["u_latents"].keys) == users and len(users) <= 10
    assert set(delta.tables["i_biases"].keys) == items
    data = encode(delta)
    # rows: 20 x 11 floats; fixed: two RNG states (5.6 KB) and the 500-error window (4.5 KB)
    assert len(data) < 14_000 and not data.startswith(b"\x80")  # msgpack, not a pickle


def test_erasure_travels_as_a_removed_row_and_asks_for_a_base():
    learner = OnlineLearner("BiasedMF", seed=1)
    learner.learn_one(Event("e1", "alice", "i1", "rating", 4.0, 0.0))
    replica = OnlineLearner.restore(learner.snapshot())
    learner.clear_dirty()
    learner.forget_user("alice")
    assert learner._needs_base
    apply_delta(replica, take_delta(learner))
    assert "alice" not in replica.model._model.u_latents


def test_versions_start_clean_and_old_pickles_still_load():
    learner = OnlineLearner("BiasedMF")
    learner.learn_one(Event("e1", "u", "i", "rating", 4.0, 0.0))
    assert learner.dirty_rows() == ({"u"}, {"i"})
    assert OnlineLearner.restore(learner.snapshot()).dirty_rows() == (set(), set())
    old = OnlineLearner("BiasedMF")
    for name in ("_dirty_users", "_dirty_items", "_needs_base"):
        del old.__dict__[name]
    restored = pickle.loads(pickle.dumps(old))  # as a version written before deltas
    restored.predict_one("u", "i")
    assert restored.dirty_rows() == ({"u"}, {"i"})


def test_only_river_mf_learners_with_sgd_are_delta_capable():
    from river import optim

    assert delta_capable(OnlineLearner("FunkMF"))
    assert not delta_capable(OnlineLearner("FMRegressor"))
    assert not delta_capable(OnlineLearner("BiasedMF", {"latent_optimizer": optim.Adam()}))


def test_a_delta_refuses_another_model():
    delta = take_delta(OnlineLearner("FunkMF"))
    with pytest.raises(ValueError, match="FunkMF delta"):
        apply_delta(OnlineLearner("BiasedMF"), delta)
