"""The compiled MF round (learning.mf_round) trains what the torch path trains."""

import numpy as np
import pytest
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
    for opt in ft._opts:  # in the parameters' order (a restored state dict has its own)
        for state in (opt.state[p] for g in opt.param_groups for p in g["params"]):
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
    assert used == [False, True, True, True, True]  # the first round makes the state
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
