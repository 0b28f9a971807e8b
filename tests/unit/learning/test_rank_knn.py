"""Whole-history item-kNN (HistoryKNN) and the reranker with it as a source (rerank-knn)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.erasure import forget_ranker_user
from learning.rank_knn import HistoryKNN
from learning.rank_rerank_knn import KNN_FEATURES, KNNRerank
from learning.ranking_learner import RANKING_MODELS, RankingLearner
from learning.ranking_metrics import RankingPrequential
from stream.synthetic_implicit import ImplicitStream


def _stream(seed: int, n: int, users: int, items: int):
    rng = np.random.default_rng(seed)
    pop = rng.zipf(1.5, size=items * 4) % items
    t = 0.0
    for _ in range(n):
        t += float(rng.choice([1.0, 60.0, 5000.0, 200_000.0]))
        yield f"u{int(rng.integers(0, users))}", int(pop[int(rng.integers(0, len(pop)))]), t


def _brute_knn(events: list[tuple[str, int]], user: str, n_items: int, decay: float,
               history: int, position_decay: float, max_history: int) -> np.ndarray:
    """The module doc's definition, with dense matrices and no pruning."""
    c = np.zeros((n_items, n_items))
    n = np.zeros(n_items)
    hist: dict[str, list[int]] = {}
    for u, i in events:
        c *= decay
        n *= decay
        h = hist.setdefault(u, [])
        if i in h:
            continue
        if h:
            w = 1.0 / math.log2(1 + len(h))
            for p in h:
                c[i, p] += w
                c[p, i] += w
        n[i] += 1.0
        h.append(i)
        if len(h) > max_history:
            del h[0]
    scores = np.zeros(n_items)
    for age, p in enumerate(reversed(hist.get(user, [])[-history:])):
        scores += position_decay ** age * c[p] / math.sqrt(n[p])
    return scores / np.sqrt(np.maximum(n, 1e-300))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), users=st.integers(1, 8), items=st.integers(1, 25),
       decay=st.sampled_from([1.0, 0.99]), history=st.integers(1, 6),
       position_decay=st.sampled_from([1.0, 0.7]))
def test_history_knn_equals_the_dense_definition(seed, users, items, decay, history,
                                                 position_decay):
    knn = HistoryKNN(history, decay=decay, position_decay=position_decay, max_history=8,
                     max_neighbours=1000)
    events = [(u, i) for u, i, _ in _stream(seed, 120, users, items)]
    for u, i in events:
        knn.learn_one(u, i)
    for user in {u for u, _ in events}:
        want = _brute_knn(events, user, knn.n_items, decay, history, position_decay, 8)
        np.testing.assert_allclose(knn.score_items(user), want, rtol=1e-9, atol=1e-12)
    assert knn.score_items("nobody").tolist() == [0.0] * knn.n_items


def test_history_knn_keeps_links_bounded_and_forgets_a_user():
    knn = HistoryKNN(max_neighbours=3)
    for t in range(40):
        knn.learn_one(f"u{t % 4}", t % 17)
    assert max(row.n for row in knn._links.values()) <= 2 * 3
    assert forget_ranker_user(knn, "u1") == 1 and forget_ranker_user(knn, "u1") == 0
    assert knn.score_items("u1").tolist() == [0.0] * knn.n_items
    assert b"u1" not in pickle.dumps(knn)


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="history"):
        HistoryKNN(history=10, max_history=5)
    with pytest.raises(ValueError, match="decay"):
        HistoryKNN(decay=0.0)
    with pytest.raises(ValueError, match="n_knn"):
        KNNRerank(n_knn=0)
    with pytest.raises(ValueError, match="max_neighbours"):
        HistoryKNN(max_neighbours=0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), users=st.integers(1, 20), items=st.integers(2, 60),
       n=st.integers(1, 10), k=st.integers(1, 10))
def test_rerank_knn_candidate_measure_equals_the_dense_measure(seed, users, items, n, k):
    model = KNNRerank(n_popular=n, n_personal=n, n_knn=n)
    metrics = RankingPrequential(k=k)
    seen: dict[str, set[int]] = {}
    for user, item, ts in _stream(seed, 200, users, items):
        s = seen.get(user)
        if s and item < model.n_items and item not in s:
            exclude = np.fromiter(s, np.int64, len(s))
            dense = model.score_items(user, now=ts)
            rows, values = model.candidate_scores(user, now=ts)
            assert np.array_equal(dense[rows], values)
            others = np.delete(dense, rows)
            assert len(others) == 0 or others.max() < values.min()
            knn = model.knn.score_items(user)
            top = np.flatnonzero(knn)
            if len(top) <= n:  # every kNN item is a candidate when it has few
                assert set(top.tolist()) <= set(rows.tolist())
            fast = metrics.measure_candidates(rows, values, item, exclude,
                                              lambda d=dense: d, model.n_items)
            slow = metrics.measure(dense, item, exclude)
            assert (fast[0], fast[1].tolist()) == (slow[0], slow[1].tolist())
        model.learn_one(user, item, 1.0, ts)
        seen.setdefault(user, set()).add(item)


def _implicit(n: int):
    return list(ImplicitStream(n_users=100, n_items=200, n_events=n, drift_at=(), seed=3))


def test_rerank_knn_is_registered_learns_and_uses_its_knn_weights():
    assert "rerank-knn" in RANKING_MODELS
    learned, frozen = RankingLearner("rerank-knn"), RankingLearner("rerank-knn")
    frozen.ranker.lr = 0.0  # stays decayed popularity on the same candidates
    for e in _implicit(3000):
        learned.learn_one(e)
        frozen.learn_one(e)
    assert isinstance(learned.ranker, KNNRerank)
    assert learned.ranker._w.shape[1] == len(KNN_FEATURES)
    assert np.any(learned.ranker.weights(1)[-3:] != 0.0)  # the kNN columns are learned
    assert learned.score().hr > frozen.score().hr + 0.05
    assert set(learned.part_scores()) == {"popularity", "co_occurrence", "sequence",
                                          "item_knn"}


def test_rerank_knn_cold_user_gets_popularity_and_a_burst_changes_the_list():
    model = KNNRerank(n_popular=5, n_personal=5, n_knn=5)
    for t, (user, item) in enumerate([("a", 0), ("b", 0), ("c", 1), ("a", 2), ("d", 3)]):
        model.learn_one(user, item, ts=float(t))
    cold = model.score_items("nobody")
    assert cold.shape == (4,) and int(np.argmax(cold)) == 0
    before = model.score_items("e").tolist()
    for t, item in enumerate([3, 1], start=10):
        model.learn_one("e", item, ts=float(t))
    assert model.score_items("e").tolist() != before



@pytest.mark.parametrize("name", ["rerank-knn", "rerank-mlp"])
def test_compiled_features_are_bit_identical_to_numpy(name, monkeypatch):
    """rerank-knn / rerank-mlp candidates and feature rows: kernels on == the numpy path."""
    from learning import rank_kernels as kernels

    assert kernels.ENABLED, "numba is a dependency: the kernel path must be the one tested"
    model = RANKING_MODELS[name](0)
    calls = []
    compiled = model._features_compiled
    monkeypatch.setattr(model, "_features_compiled", lambda *a: calls.append(1) or compiled(*a))
    fused = model._scored_compiled  # rerank-mlp: the base reranker's fused kernels

    def counted(*args):  # type: ignore[no-untyped-def]
        out = fused(*args)
        calls.extend([1] if out[-1] else [])
        return out
    monkeypatch.setattr(model, "_scored_compiled", counted)
    compared = 0
    for user, item, ts in _stream(21, 800, users=40, items=90):
        if user in model._last_ts:
            got = []
            for enabled in (True, False):
                monkeypatch.setattr(kernels, "ENABLED", enabled)
                model._cache = None
                rows, feats, _, ctx = model._scored(user, ts)
                got.append((rows.tolist(), feats.copy(), ctx))
            (rows_a, feats_a, ctx_a), (rows_b, feats_b, ctx_b) = got
            assert rows_a == rows_b and ctx_a == ctx_b
            assert np.array_equal(feats_a, feats_b)  # exact, not approx
            compared += 1
        monkeypatch.setattr(kernels, "ENABLED", compared % 2 == 0)  # learn on both paths
        model.learn_one(user, item, 1.0, ts)
    assert compared > 400 and len(calls) >= compared  # the kernel served the lists
