"""The compiled MF round (learning.mf_round) trains what the torch path trains."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from learning import mf_round, weights
from learning.finetune import FineTuner
from learning.replay import ReplayBuffer
from learning.torch_models import DeepRecommender


def _tuner(compiled: bool, **kw) -> FineTuner:
    deep = DeepRecommender("mf", n_factors=6, clip=(1.0, 5.0), seed=3)
    ft = FineTuner(deep, device="cpu", batch_size=kw.pop("batch_size", 97), lr=0.05,
                   weight_decay=0.01, epochs_per_round=3, replay_all=True, seed=5, **kw)
    ft.compiled_rounds = compiled
    return ft


def _rounds(rng: np.random.Generator, n_rounds: int, users: int = 40, items: int = 60):
    out = []
    for r in range(n_rounds):  # later rounds bring new users and items (tables grow)
        n = int(rng.integers(150, 400))
        out.append(([f"u{x}" for x in rng.integers(0, users + 30 * r, n)],
                    [f"i{x}" for x in rng.integers(0, items + 40 * r, n)],
                    rng.uniform(1.0, 5.0, n), np.arange(n, dtype=float) + 1000.0 * r))
    return out


def _state(ft: FineTuner) -> list[np.ndarray]:
    module = ft.recommender.module
    out = [p.detach().numpy().copy() for p in (module.global_bias, module.user_table,
                                                 module.item_table)]
    params = (module.user_table, module.item_table, module.global_bias)
    for states in ft._states():  # the optimizers' or (before they exist) the tuner's
        for state in (states[p] for p in params if p in states):  # not in insertion order
            out += [float(state["step"])] + [state[k].detach().numpy().copy()
                                             for k in ("exp_avg", "exp_avg_sq")]
    return out


def test_the_compiled_round_equals_the_torch_round():
    assert mf_round.ENABLED, ("numba is a dependency (pyproject.toml): install it, and run "
                              "the tests without LIFELONG_NUMBA=0")
    fast, slow = _tuner(True), _tuner(False)
    buffers = [ReplayBuffer(500, recent_share=0.8, recent_window=300, seed=1) for _ in "ab"]
    rng = np.random.default_rng(11)
    used = []
    for users, items, values, ts in _rounds(rng, 5):
        used.append(mf_round.applies(fast))
        reports = [ft.round(users, items, values, ts, buf)
                   for ft, buf in zip((fast, slow), buffers, strict=True)]
        assert reports[0].samples == reports[1].samples
        assert reports[0].loss == pytest.approx(reports[1].loss, rel=1e-5)
        for a, b in zip(_state(fast), _state(slow), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert used == [True] * 5  # from the first round: the tuner makes the state
    assert "_opts" not in vars(fast) and "_opts" in vars(slow)
    assert not any(mf_round.applies(t) for t in (slow,))
    np.testing.assert_allclose(fast.recommender.predict_many(["u1", "u77"], ["i2", "i3"]),
                               slow.recommender.predict_many(["u1", "u77"], ["i2", "i3"]),
                               atol=1e-5)


def test_a_restored_tuner_continues_compiled_as_the_uninterrupted_one():
    rng = np.random.default_rng(2)
    data = _rounds(rng, 4)
    whole = _tuner(True)
    for args in data:
        whole.round(*args)
    first = _tuner(True)
    for args in data[:2]:
        first.round(*args)
    again = FineTuner.restore(weights.load(weights.dump(first.recommender)), first.snapshot(),
                              device="cpu")
    assert mf_round.applies(again)
    for args in data[2:]:
        again.round(*args)
    for a, b in zip(_state(whole), _state(again), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kw", [{"optimizer": "adam"}, {"optimizer": "adagrad"},
                                {"loss": "bpr"}])
def test_other_configurations_keep_the_torch_path(kw):
    ft = _tuner(True, **kw)
    rng = np.random.default_rng(4)
    for args in _rounds(rng, 2):
        ft.round(*args)
    assert not mf_round.applies(ft)
    two_tower = FineTuner(DeepRecommender("two_tower", n_factors=4, seed=0), device="cpu")
    two_tower.round(["u1", "u2"], ["i1", "i2"], [4.0, 2.0], [1.0, 2.0])
    assert not mf_round.applies(two_tower)
    assert torch.get_num_threads() >= 1


def test_torch_optimizers_built_later_take_over_the_compiled_state():
    fast, slow = _tuner(True), _tuner(False)
    rng = np.random.default_rng(8)
    data = _rounds(rng, 4)
    for args in data[:2]:
        for ft in (fast, slow):
            ft.round(*args)
    assert "_opts" not in vars(fast)
    blob, torch_blob = fast.snapshot(), slow.snapshot()  # snapshot() builds the optimizers
    assert "_opts" in vars(fast) and "_pending" not in vars(fast)
    ours, theirs = (safetensors.torch.load(b) for b in (blob, torch_blob))
    assert sorted(ours) == sorted(theirs)
    assert weights.safetensors_metadata(blob)["scalars"] == \
        weights.safetensors_metadata(torch_blob)["scalars"]
    for key, val in ours.items():
        assert val.dtype == theirs[key].dtype and val.shape == theirs[key].shape, key
        np.testing.assert_allclose(val.numpy(), theirs[key].numpy(), rtol=1e-5, atol=1e-6)
    fast.compiled_rounds = False  # the torch path continues from the state the rounds made
    for args in data[2:]:
        for ft in (fast, slow):
            ft.round(*args)
    for a, b in zip(_state(fast), _state(slow), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_tuner_pickled_with_its_optimizers_and_no_new_fields_still_loads():
    old = _tuner(False)  # what main's code pickled: built optimizers, no compiled_rounds
    rng = np.random.default_rng(9)
    data = _rounds(rng, 3)
    old.round(*data[0])
    del old.__dict__["compiled_rounds"]
    old.__dict__.pop("_pending", None)
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.compiled_rounds and mf_round.applies(loaded)
    twin = pickle.loads(pickle.dumps(old))
    twin.compiled_rounds = False
    for args in data[1:]:
        loaded.round(*args)
        twin.round(*args)
    for a, b in zip(_state(loaded), _state(twin), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    fresh = pickle.loads(pickle.dumps(_tuner(True)))  # unbuilt: rounds run on the state
    fresh.round(*data[0])
    assert "_opts" not in vars(fresh) and len(fresh._states()) == 2


_PROBE = """
import sys, tempfile
from pathlib import Path
from lifelong.commands import evaluate_file
from stream.synthetic import SyntheticStream, write
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "s.tsv"
    write(SyntheticStream(n_users=150, n_items=150, n_events=6000, seed=1), path, "movielens")
    report = evaluate_file(path, fmt="movielens", model="lifelong", sort_by_time=True,
                           clip=(1.0, 5.0))
print(report["rounds"], "torch._dynamo" in sys.modules)
"""


@pytest.mark.parametrize("numba", ["1", "0"])
def test_a_compiled_evaluation_never_imports_torch_dynamo(numba):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3]), "LIFELONG_NUMBA": numba}
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rounds, dynamo = done.stdout.split()[-2:]
    assert int(rounds) >= 1  # a fine-tune round ran
    # only the torch path (LIFELONG_NUMBA=0, the reference) builds a torch optimizer
    assert dynamo == ("True" if numba == "0" else "False")
