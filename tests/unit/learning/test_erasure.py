import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import optim

from learning.erasure import Forgettable
from learning.idtable import IdTable
from learning.models import MODEL_NAMES
from learning.online import OnlineLearner
from learning.replay import ReplayBuffer
from stream.schema import Event

TARGET = "target-user-7f3a"


def _events(n, seed=0):
    rng = np.random.default_rng(seed)
    users = [TARGET] + [f"other{k}" for k in range(6)]
    return [Event(f"e{k}", users[int(rng.integers(len(users)))], f"i{int(rng.integers(8))}",
                  "rating", float(rng.integers(1, 6)), float(k)) for k in range(n)]


def _learner(name, params=None):
    learner = OnlineLearner(name, params, seed=5)
    for ev in _events(300):
        learner.learn_one(ev)
    return learner


CASES = [(name, None) for name in MODEL_NAMES] + [
    ("BiasedMF", {"bias_optimizer": optim.AdaGrad(0.05), "latent_optimizer": optim.Adam()}),
    ("FMRegressor", {"weight_optimizer": optim.AdaGrad(0.05)}),
]


@pytest.mark.parametrize(("name", "params"), CASES)
def test_forgotten_user_predicts_like_a_cold_user_and_leaves_no_trace(name, params):
    learner = _learner(name, params)
    assert isinstance(learner, Forgettable)
    others = [learner.predict_one("other1", f"i{k}") for k in range(8)]
    assert TARGET.encode() in pickle.dumps(learner)
    assert learner.forget_user(TARGET) > 0
    assert TARGET.encode() not in pickle.dumps(learner)
    assert learner.forget_user(TARGET) == 0
    for k in range(8):  # a cold user's latent is the next initialiser draw: same state
        learner.forget_user(TARGET)  # River's predict_one adds an unknown user (a fresh draw)
        cold = copy.deepcopy(learner)
        assert learner.predict_one(TARGET, f"i{k}") == cold.predict_one("never-seen", f"i{k}")
    assert [learner.predict_one("other1", f"i{k}") for k in range(8)] == others


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(MODEL_NAMES), st.integers(0, 10_000))
def test_forgetting_equals_a_model_that_only_ever_had_a_cold_user(name, seed):
    learner = OnlineLearner(name, seed=1)
    for ev in _events(60, seed):
        learner.learn_one(ev)
    learner.forget_user(TARGET)
    assert TARGET.encode() not in pickle.dumps(learner)
    cold = copy.deepcopy(learner)
    assert learner.predict_one(TARGET, "i0") == cold.predict_one("someone-new", "i0")


def test_id_table_forget_frees_the_row_and_the_snapshot_forgets_the_id():
    table = IdTable()
    table.lookup(["a", TARGET, "b"], now=0.0)
    assert table.forget_user(TARGET) == 1 and table.forget_user(TARGET) == 0
    assert TARGET not in table and TARGET not in table.snapshot()["ids"]
    assert table.lookup(["a", "b"], now=1.0).tolist() == [0, 2]
    assert table.lookup(["new"], now=1.0).tolist() == [1]
    restored = IdTable.restore(table.snapshot())
    assert restored.lookup(["new", "c"], now=2.0).tolist() == [1, 3]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=200), st.integers(0, 5))
def test_replay_forget_rows_removes_every_sample_of_the_row(users, row):
    buf = ReplayBuffer(capacity=40, recent_window=10, seed=0)
    n = len(users)
    buf.add_batch(users, np.zeros(n), np.ones(n), np.arange(n, dtype=float))
    before = len(buf)
    dropped = buf.forget_rows([row])
    assert len(buf) == before - dropped
    state = buf.snapshot()
    assert row not in state["reservoir.user_row"] and row not in state["recent.user_row"]
    if row != 0:  # zeroed tails hold row 0
        assert row not in buf._res["user_row"] and row not in buf._ring["user_row"]
    users_left, _, _ = buf.sample(50)
    assert row not in users_left.tolist()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=1, max_size=200), st.floats(0, 100))
def test_replay_retention_drops_exactly_the_samples_older_than_the_cutoff(stamps, cutoff):
    buf = ReplayBuffer(capacity=40, recent_window=10, seed=0)
    n = len(stamps)
    buf.add_batch(np.arange(n), np.zeros(n), np.ones(n), np.asarray(stamps))
    state = buf.snapshot()
    kept = {int(u) for name in ("reservoir", "recent")
            for u, t in zip(state[f"{name}.user_row"], state[f"{name}.ts"], strict=True)
            if t >= cutoff}
    before = len(buf)
    assert buf.drop_older_than(cutoff) == before - len(buf)
    after = buf.snapshot()
    assert all(t >= cutoff for name in ("reservoir", "recent") for t in after[f"{name}.ts"])
    assert {int(u) for name in ("reservoir", "recent")
            for u in after[f"{name}.user_row"]} == kept
