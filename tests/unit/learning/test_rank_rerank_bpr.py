"""rerank-bpr: the MLP reranker with an online BPR part as two list features (and a source)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from learning.erasure import forget_ranker_user
from learning.rank_bpr import BPR
from learning.rank_rerank_bpr import BPR_FEATURES, BPRRerank
from learning.rank_rerank_knn import KNN_FEATURES
from stream.synthetic_implicit import ImplicitStream
from tests.unit.learning.test_rank_rerank_mlp import learned_and_frozen


def _implicit(n: int, seed: int = 3):
    return list(ImplicitStream(n_users=100, n_items=200, n_events=n, drift_at=(), seed=seed))


def _events(n: int):
    return [(e.user_id, int(e.item_id[1:]), e.ts) for e in _implicit(n)]


def test_bpr_columns_are_the_bpr_parts_scores_over_the_list():
    model = BPRRerank(hidden=8, seed=4)
    twin = BPR(32, sampling="popularity", seed=4 + 7)  # the part, fed the same events
    checked = 0
    for user, item, ts in _events(1500):
        rows, feats, _, _ = model._scored(user, ts)
        s = twin.score_items(user)[rows]
        bpr = feats[:, len(KNN_FEATURES):]
        if user in twin._users:
            np.testing.assert_allclose(bpr[:, 0], (s - s.mean()) / (s.std() + 1e-9), atol=1e-12)
            assert bpr[np.argmax(s), 1] == 0.0 and bpr[:, 1].max() == (len(rows) - 1) / len(rows)
            checked += 1
        else:
            assert (bpr[:, 0] == 0.0).all() and (bpr[:, 1] == 0.5).all()
        model.learn_one(user, item, 1.0, ts)
        twin.learn_one(user, item, 1.0, ts)
    assert checked > 1000 and feats.shape[1] == len(BPR_FEATURES) == len(KNN_FEATURES) + 2


def test_n_bpr_adds_the_users_best_bpr_items_to_the_candidates():
    plain, wide = BPRRerank(n_popular=5, n_personal=5, n_knn=5), BPRRerank(
        n_popular=5, n_personal=5, n_knn=5, n_bpr=20)
    for user, item, ts in _events(1500):
        plain.learn_one(user, item, 1.0, ts)
        wide.learn_one(user, item, 1.0, ts)
    user = "u1"
    a, b = plain.candidate_scores(user)[0], wide.candidate_scores(user)[0]
    best = np.argpartition(-wide.bpr.score_items(user), 20)[:20]
    assert set(a) <= set(b) and set(best) <= set(b) and len(b) > len(a)
    with pytest.raises(ValueError, match="n_bpr"):
        BPRRerank(n_bpr=-1)


def test_rerank_bpr_is_registered_learns_its_bpr_weights_and_beats_its_frozen_start():
    learned, frozen = learned_and_frozen("rerank-bpr")
    model = learned.ranker
    assert isinstance(model, BPRRerank) and model.seed == 2 and model.bpr.seed == 9
    assert np.any(model.weights(1)[-2:] != 0.0)  # the BPR columns are learned
    assert learned.score().hr > frozen.score().hr + 0.05
    assert set(learned.part_scores()) == {"popularity", "co_occurrence", "sequence",
                                          "item_knn", "bpr"}


def test_erasure_makes_the_user_cold_for_the_bpr_part_too():
    model = BPRRerank(hidden=8)
    for user, item, ts in _events(800):
        model.learn_one(user, item, 1.0, ts)
    assert "u1" in model.bpr._users
    assert forget_ranker_user(model, "u1") > 0
    assert "u1" not in model.bpr._users and b"\x8c\x02u1\x94" not in pickle.dumps(model)
    rows, feats, _, ctx = model._scored("u1", 1e12)
    assert ctx == 0 and (feats[:, -2] == 0.0).all() and (feats[:, -1] == 0.5).all()
    cold = model._scored("nobody", 1e12)
    assert np.array_equal(rows, cold[0]) and np.array_equal(feats, cold[1])


def test_two_bpr_parts_give_their_mean_score_and_the_last_items_column():
    model = BPRRerank(hidden=8, seed=4, bpr_models=2, bpr_last=3)
    twins = [BPR(32, sampling="popularity", seed=s) for s in (11, 12)]
    recent: dict[str, list[int]] = {}
    checked = 0
    for user, item, ts in _events(1200):
        rows, feats, _, _ = model._scored(user, ts)
        cols = feats[:, len(KNN_FEATURES):]
        if user in twins[0]._users:
            s = (twins[0].score_items(user)[rows] + twins[1].score_items(user)[rows]) / 2
            np.testing.assert_allclose(cols[:, 0], (s - s.mean()) / (s.std() + 1e-9), atol=1e-9)
            last = recent[user][-3:]
            d = sum(t._items[rows] @ t._items[last].mean(axis=0) for t in twins)
            np.testing.assert_allclose(cols[:, 2], (d - d.mean()) / (d.std() + 1e-9), atol=1e-9)
            checked += 1
        else:
            assert (cols[:, 0] == 0.0).all() and (cols[:, 2] == 0.0).all()
        model.learn_one(user, item, 1.0, ts)
        for t in twins:
            t.learn_one(user, item, 1.0, ts)
        if item not in recent.setdefault(user, []):
            recent[user].append(item)
    assert checked > 800 and model.feature_names[-1] == "bpr_last" and feats.shape[1] == 32
    assert sorted(model.parts())[:2] == ["bpr", "bpr_2"]
    assert forget_ranker_user(model, "u1") > 0
    assert all("u1" not in b._users for b in model.bprs)
    for bad in ({"bpr_models": 0}, {"bpr_last": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            BPRRerank(**bad)


def test_list_negatives_are_unseen_candidates_and_bpr_learns_them():
    for source in ("list", "bpr-top"):
        model = BPRRerank(hidden=8, seed=4, bpr_hard=2, bpr_hard_from=source, bpr_hard_top=5)
        twin = BPR(32, sampling="popularity", seed=4 + 7)
        seen: dict[str, set[int]] = {}
        drawn = 0
        for user, item, ts in _events(1200):
            rows = model._scored(user, ts)[0].copy()
            before = model.bpr.score_rows(user, rows) if user in model.bpr._users else None
            model.learn_one(user, item, 1.0, ts)
            hard = model.last_list_negatives
            mine = seen.setdefault(user, set())
            if len(hard):
                drawn += 1
                assert len(hard) <= 2 and set(hard.tolist()) <= set(rows.tolist())
                assert item not in hard and not mine & set(hard.tolist())
                if source == "bpr-top":  # among the 5 best unseen of the list by BPR
                    assert before is not None
                    ok = [r for r in rows[np.argsort(-before, kind="stable")].tolist()
                          if r != item and r not in mine][:5]
                    assert set(hard.tolist()) <= set(ok)
            twin.learn_one(user, item, 1.0, ts, negatives=hard)
            mine.add(item)
        assert drawn > 500
        np.testing.assert_allclose(model.bpr.item_vectors(), twin.item_vectors(), atol=1e-12)
    with pytest.raises(ValueError, match="bpr_hard"):
        BPRRerank(bpr_hard=-1)
    with pytest.raises(ValueError, match="bpr_hard_from"):
        BPRRerank(bpr_hard=1, bpr_hard_from="popular")


def test_explicit_negatives_lower_their_bpr_score():
    plain, pushed = BPR(8, seed=1), BPR(8, seed=1)
    for bpr in (plain, pushed):
        for user, item in [("a", 0), ("b", 1), ("a", 2), ("b", 3)]:
            bpr.learn_one(user, item)
    plain.learn_one("a", 1)
    pushed.learn_one("a", 1, negatives=np.array([3, 3]))
    assert pushed.score_items("a")[3] < plain.score_items("a")[3]
    assert pushed.score_items("a")[1] > plain.score_items("a")[1]  # pushed up against it too


def test_a_second_bpr_part_fills_its_own_two_columns():
    model = BPRRerank(hidden=8, seed=4, bpr_second="uniform")
    twin = BPR(32, sampling="uniform", seed=4 + 17)
    checked = 0
    for user, item, ts in _events(900):
        rows, feats, _, _ = model._scored(user, ts)
        if user in twin._users:
            s = twin.score_rows(user, rows)
            np.testing.assert_allclose(feats[:, -2], (s - s.mean()) / (s.std() + 1e-9),
                                       atol=1e-12)
            assert feats[np.argmax(s), -1] == 0.0
            checked += 1
        else:
            assert (feats[:, -2] == 0.0).all() and (feats[:, -1] == 0.5).all()
        model.learn_one(user, item, 1.0, ts)
        twin.learn_one(user, item, 1.0, ts)
    assert checked > 500 and model.feature_names[-2:] == ("bpr2_z", "bpr2_rank")
    assert model.parts()["bpr_second"] is model.second
    assert forget_ranker_user(model, "u1") > 0 and "u1" not in model.second._users
    with pytest.raises(ValueError, match="bpr_second"):
        BPRRerank(bpr_second="hard")


def test_extra_heads_score_as_the_heads_mean_and_learn():
    model = BPRRerank(hidden=8, seed=4, mlp_heads=3)
    for user, item, ts in _events(700):
        model.learn_one(user, item, 1.0, ts)
    user, now = "u1", 1e12
    _, feats, score, ctx = model._scored(user, now)
    linear = feats @ model.weights(ctx)
    x, h = model._forward(feats, ctx)
    heads = [h @ model._w2] + [np.tanh(x @ hd["p"][0] + hd["p"][1]) @ hd["p"][2]
                               for hd in model._heads]
    np.testing.assert_allclose(score, linear + sum(heads) / 3, atol=1e-9)
    assert all(hd["t"] == model.steps > 100 for hd in model._heads)
    assert all(np.abs(hd["p"][2]).sum() > 0 for hd in model._heads)
    assert not np.allclose(heads[1], heads[2])
    with pytest.raises(ValueError, match="mlp_heads"):
        BPRRerank(mlp_heads=0)


def test_snapshot_restore_continue_equals_an_uninterrupted_run_with_every_option():
    events = _events(900)
    kw = {"hidden": 8, "seed": 5, "bpr_hard": 2, "bpr_second": "uniform", "mlp_heads": 2}
    straight, first = BPRRerank(**kw), BPRRerank(**kw)
    for user, item, ts in events[:500]:
        first.learn_one(user, item, 1.0, ts)
    restored = pickle.loads(pickle.dumps(first))
    for user, item, ts in events[500:]:
        restored.learn_one(user, item, 1.0, ts)
    for user, item, ts in events:
        straight.learn_one(user, item, 1.0, ts)
    for user in ("u1", "u7", "nobody"):
        a, b = straight.candidate_scores(user, 1e12), restored.candidate_scores(user, 1e12)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
