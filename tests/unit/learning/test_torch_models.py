import numpy as np
import pytest
import torch

from learning.errors import ConfigurationError
from learning.torch_models import DeepRecommender, TorchMF, TwoTower


@pytest.mark.parametrize("cls", [TorchMF, TwoTower])
def test_grow_keeps_rows_and_parameter_identity(cls):
    m = cls(4, 3, n_factors=5, seed=2)
    before_u, before_i = m.user_table.detach().clone(), m.item_table.detach().clone()
    param = m.user_table
    m.grow(10, 3)
    assert m.user_table is param
    assert (m.n_users, m.n_items) == (10, 3)
    assert torch.equal(m.user_table[:4], before_u) and torch.equal(m.item_table, before_i)
    assert torch.all(m.user_table[4:, -1] == 0)  # new biases start at zero
    pred = m(torch.tensor([9, 0]), torch.tensor([2, 1]))
    assert pred.shape == (2,) and torch.isfinite(pred).all()


def test_growth_and_reset_are_seeded():
    a, b = TorchMF(2, 2, n_factors=3, seed=7), TorchMF(2, 2, n_factors=3, seed=7)
    for m in (a, b):
        m.grow(6, 4)
        m.reset_rows(user_rows=[1], item_rows=np.array([0, 3]))
    assert torch.equal(a.user_table, b.user_table) and torch.equal(a.item_table, b.item_table)
    c = TorchMF(2, 2, n_factors=3, seed=7)
    d = c.user_table[1].clone()
    c.reset_rows(user_rows=[1])
    assert not torch.equal(c.user_table[1], d) and c.user_table[1, -1] == 0


@pytest.mark.parametrize("kind", ["mf", "two_tower"])
def test_unknown_ids_fall_back_to_biases(kind):
    rec = DeepRecommender(kind, n_factors=3, hidden=4, out_dim=3, seed=1)
    rec.users.lookup(["u"], 0.0)
    rec.items.lookup(["i"], 0.0)
    with torch.no_grad():
        rec.module.global_bias.fill_(3.0)
        rec.module.user_table[0, -1] = 0.5
        rec.module.item_table[0, -1] = -0.25
    got = rec.predict_many(["u", "u", "x", "x"], ["i", "y", "i", "y"])
    assert got[1] == pytest.approx(3.5) and got[2] == pytest.approx(2.75)
    assert got[3] == pytest.approx(3.0) and got[0] != pytest.approx(3.25)
    assert rec.predict_one("u", "i") == pytest.approx(got[0])


def test_ensure_capacity_doubles():
    rec = DeepRecommender(capacity_hint=4, n_factors=2)
    rec.users.lookup([str(k) for k in range(5)], 0.0)
    assert rec.ensure_capacity() and rec.module.n_users == 8 and rec.module.n_items == 4
    assert not rec.ensure_capacity()


def test_bad_kind():
    with pytest.raises(ConfigurationError, match='unknown module "nope"'):
        DeepRecommender("nope")
