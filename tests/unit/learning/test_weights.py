import numpy as np
import pytest
import torch

from learning.torch_models import DeepRecommender
from learning.weights import WeightsError, dump, load, metadata_of


@pytest.mark.parametrize("kind", ["mf", "two_tower"])
def test_dump_load_roundtrip(kind):
    rec = DeepRecommender(kind, n_factors=3, hidden=4, out_dim=2, capacity_hint=2,
                          ttl_seconds=5.0, clip=(1.0, 5.0), seed=4)
    users = [f"u{k}" for k in range(5)]
    items = [f"i{k}" for k in range(3)]
    rec.users.lookup(users, 1.0)
    rec.items.lookup(items, 2.0)
    rec.users.evict(100.0)
    rec.users.lookup(["late"], 100.0)
    rec.ensure_capacity()
    rec.samples_trained = 17
    blob = dump(rec)
    assert b"pickle" not in blob[:8] and metadata_of(blob)["format"] == "lifelong.deep/1"
    back = load(blob)
    assert back.config() == rec.config() and back.samples_trained == 17
    assert back.users.snapshot()["ids"] == rec.users.snapshot()["ids"]
    assert np.array_equal(back.items.last_seen, rec.items.last_seen)
    for (n, a), (_, b) in zip(rec.module.state_dict().items(),
                              back.module.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    q_u, q_i = [*users, "late", "x"], items * 2 + ["y"]
    assert np.array_equal(back.predict_many(q_u, q_i), rec.predict_many(q_u, q_i))
    # growth after load continues the same seeded draws
    for r in (rec, back):
        r.module.grow(20, 20)
    assert torch.equal(rec.module.user_table, back.module.user_table)


def test_load_rejects_garbage():
    with pytest.raises(WeightsError):
        load(b"\x80\x04 not safetensors at all")
    with pytest.raises(WeightsError):
        load(b"")
