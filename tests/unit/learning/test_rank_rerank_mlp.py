"""The kNN reranker plus an MLP (rerank-mlp): its gradients, start, seeding and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.rank_rerank_knn import KNNRerank
from learning.rank_rerank_mlp import MLPRerank, network_gradients
from learning.ranking_learner import RANKING_MODELS, RankingLearner
from stream.synthetic_implicit import ImplicitStream


def _implicit(n: int, seed: int = 3):
    return list(ImplicitStream(n_users=100, n_items=200, n_events=n, drift_at=(), seed=seed))


def learned_and_frozen(model: str, events: int = 3000):
    """A seeded learner of ``model`` and an unseeded twin frozen at its start (decayed
    popularity: no linear nor network steps), both fed the same implicit stream."""
    assert model in RANKING_MODELS
    learned, frozen = RankingLearner(model, seed=2), RankingLearner(model)
    frozen.ranker.lr, frozen.ranker.mlp_lr = 0.0, 1e-300
    for e in _implicit(events):
        learned.learn_one(e)
        frozen.learn_one(e)
    return learned, frozen


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 30), d=st.integers(1, 8),
       hidden=st.integers(1, 6))
def test_network_gradients_equal_autograd(seed, n, d, hidden):
    rng = np.random.default_rng(seed)
    x, g = rng.normal(size=(n, d)), rng.normal(size=n)
    w1, b1, w2 = rng.normal(size=(d, hidden)), rng.normal(size=hidden), rng.normal(size=hidden)
    h = np.tanh(x @ w1 + b1)
    tw1, tb1, tw2 = (torch.tensor(a, requires_grad=True) for a in (w1, b1, w2))
    out = torch.tanh(torch.tensor(x) @ tw1 + tb1) @ tw2
    (out * torch.tensor(g)).sum().backward()
    for mine, ref in zip(network_gradients(x, h, w2, g), (tw1, tb1, tw2), strict=True):
        np.testing.assert_allclose(mine, ref.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_each_step_follows_the_autograd_gradient_of_the_listwise_log_likelihood():
    model = MLPRerank(seed=1)
    checked = 0
    for e in _implicit(1500):
        user, item = e.user_id, int(e.item_id[1:])
        seen = model._seen.get(user, set())
        if user in model._last_ts and item < model.n_items and item not in seen:
            rows, feats, score, ctx = model._scored(user, e.ts)
            at = int(np.searchsorted(rows, item))
            if at < len(rows) and rows[at] == item:
                x, _ = model._forward(feats, ctx)
                w1, b1, w2 = (torch.tensor(a, requires_grad=True) for a in
                              (model._w1, model._b1, model._w2))
                linear = torch.tensor(feats @ model.weights(ctx))
                z = linear + torch.tanh(torch.tensor(x) @ w1 + b1) @ w2
                np.testing.assert_allclose(score, z.detach().numpy(), rtol=1e-10, atol=1e-12)
                z = z.masked_fill(torch.tensor(np.isin(rows, list(seen))), -torch.inf)
                torch.log_softmax(z, 0)[at].backward()
                m = [a.copy() for a in model._adam_m]
                model.learn_one(user, item, 1.0, e.ts)
                for before, after, ref in zip(m, model._adam_m, (w1, b1, w2), strict=True):
                    np.testing.assert_allclose(after - 0.9 * before, 0.1 * ref.grad.numpy(),
                                               rtol=1e-7, atol=1e-12)
                checked += 1
                continue
        model.learn_one(user, item, 1.0, e.ts)
    assert checked > 100 and model.network()["w2"].any()


def test_it_starts_as_the_knn_reranker_and_its_init_is_seeded():
    slow = MLPRerank(mlp_lr=1e-12)  # the network stays ~0: the kNN reranker's scores
    knn = KNNRerank()
    for e in _implicit(1500):
        user, item = e.user_id, int(e.item_id[1:])
        a, b = slow.candidate_scores(user, e.ts), knn.candidate_scores(user, e.ts)
        assert np.array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-6)
        slow.learn_one(user, item, 1.0, e.ts)
        knn.learn_one(user, item, 1.0, e.ts)
    assert slow.steps > 100
    same, other = MLPRerank(seed=5).network(), MLPRerank(seed=6).network()
    assert np.array_equal(same["w1"], MLPRerank(seed=5).network()["w1"])
    assert not np.array_equal(same["w1"], other["w1"])
    assert not same["w2"].any()


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="hidden"):
        MLPRerank(hidden=0)
    with pytest.raises(ValueError, match="mlp_lr"):
        MLPRerank(mlp_lr=0.0)
    with pytest.raises(ValueError, match="n_knn"):
        MLPRerank(n_knn=0)


def test_rerank_mlp_is_registered_seeded_and_learns_beyond_its_frozen_start():
    learned, frozen = learned_and_frozen("rerank-mlp")
    assert isinstance(learned.ranker, MLPRerank) and learned.ranker.seed == 2
    assert learned.ranker.network()["w2"].any()
    assert learned.score().hr > frozen.score().hr + 0.05
    assert set(learned.part_scores()) == {"popularity", "co_occurrence", "sequence",
                                          "item_knn"}
