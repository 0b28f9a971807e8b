"""The compiled kernels against the numpy reference (learning/rank_kernels.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning import rank_kernels as kernels
from learning import rank_links, rank_top
from learning.rank_rerank import ListwiseRerank
from learning.ranking_learner import RankingLearner
from learning.ranking_metrics import RankingPrequential, rank_of, top_k
from stream.schema import Event


@pytest.fixture(autouse=True)
def _compiled() -> None:
    """These tests compare the kernels with numpy: they need them on, never skip."""
    assert kernels.ENABLED, ("numba is a dependency (pyproject.toml): install it, and run "
                             "the tests without LIFELONG_NUMBA=0")


def _stream(seed: int, n: int = 500, users: int = 30, items: int = 60) -> list[Event]:
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.exponential(3000.0, n))
    popular = rng.zipf(1.6, n) % items
    out = []
    for i in range(n):
        item = popular[i] if rng.random() < 0.6 else rng.integers(items)
        out.append(Event(f"e{i}", f"u{rng.integers(users)}", f"i{item}", "click", 1.0,
                         float(ts[i])))
    return out


def _learned(seed: int, n: int = 400) -> ListwiseRerank:
    learner = RankingLearner("rerank", part_metrics=False)
    for event in _stream(seed, n):
        learner.learn_one(event)
    assert isinstance(learner.ranker, ListwiseRerank)
    return learner.ranker


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n_popular=st.integers(1, 12),
       n_personal=st.integers(1, 12))
def test_candidates_and_features_equal_numpy(seed: int, n_popular: int,
                                             n_personal: int) -> None:
    model = ListwiseRerank(n_popular=n_popular, n_personal=n_personal)
    for t, event in enumerate(_stream(seed, 300)):
        model.learn_one(event.user_id, int(event.item_id[1:]), 1.0, event.ts + t)
    model._popular = np.concatenate([t.rows() for t in model._tops])
    flags, co_buf, seq_buf = model._buffers()
    for user in list(model._last_ts)[:10]:
        co, seq = model.co_occurrence.score_items(user), model.sequence.score_items(user)
        rows, co_rows, seq_rows, ok = kernels.personal_candidates(
            model._popular, *model.co_occurrence.score_terms(user),
            *model.sequence.score_terms(user), model.n_personal, flags, co_buf, seq_buf)
        assert not flags.any() and not co_buf.any() and not seq_buf.any()
        dense_rows = model._candidate_rows(co, seq)
        if ok:  # else a tie across the cut, where numpy's argpartition decides
            assert rows.tolist() == dense_rows.tolist()
            assert co_rows.tolist() == co[rows].tolist()
            assert seq_rows.tolist() == seq[rows].tolist()
        model._now = model._clock
        compiled = model._features_compiled(dense_rows, co[dense_rows], seq[dense_rows], user)
        assert np.array_equal(compiled, model._features(dense_rows, co, seq, user))


def test_scores_and_step_match_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _learned(3)
    user = next(u for u in model._last_ts if len(model._seen[u]) > 2)
    rows, feats, raw, ctx = model._scored(user, model._clock)
    assert np.allclose(raw, feats @ model.weights(ctx), rtol=1e-12, atol=1e-12)
    item = int(rows[-1])
    twin = pickle.loads(pickle.dumps(model))
    model._seen[user].discard(item)
    twin._seen[user].discard(item)
    before = model._w.copy()
    model._step(user, item, model._clock)
    assert not np.array_equal(model._w, before)
    monkeypatch.setattr(kernels, "ENABLED", False)
    twin._step(user, item, twin._clock)
    assert np.allclose(model._w, twin._w, rtol=1e-12, atol=1e-15)
    assert np.allclose(model._g2, twin._g2, rtol=1e-12, atol=1e-15)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(0, 4), min_size=1, max_size=40),
       data=st.data(), k=st.integers(1, 12))
def test_dense_measure_equals_rank_of_and_top_k(values: list[int], data: st.DataObject,
                                                k: int) -> None:
    scores = np.array(values, dtype=float)
    target = data.draw(st.integers(0, len(values) - 1))
    others = [i for i in range(len(values)) if i != target]
    exclude = np.array(data.draw(st.lists(st.sampled_from(others), unique=True))
                       if others else [], dtype=np.int64)
    rank, top, n_top = kernels.dense_measure(scores, target, exclude,
                                             np.zeros(len(values), dtype=bool), k)
    assert rank == int(rank_of(scores, target, exclude))
    assert top[:n_top].tolist() == top_k(scores, k, exclude).tolist()


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(0, 4), min_size=3, max_size=40), data=st.data(),
       k=st.integers(1, 8))
def test_candidate_measure_equals_numpy(values: list[int], data: st.DataObject,
                                        k: int) -> None:
    n = len(values)
    rows = np.array(sorted(data.draw(st.lists(st.integers(0, n - 1), min_size=1,
                                              unique=True))), dtype=np.int64)
    dense = np.array(values, dtype=float) / 10.0
    dense[rows] = 2.0 + np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(rows),
                                                    max_size=len(rows))))
    target = data.draw(st.integers(0, n - 1))
    others = [i for i in range(n) if i != target]
    exclude = np.array(data.draw(st.lists(st.sampled_from(others), unique=True)),
                       dtype=np.int64)
    floor = dense.copy()
    floor[rows] = -7.0  # anything: only the other rows are read
    metrics = RankingPrequential(k=k)
    got = metrics.measure_candidates(rows, dense[rows], target, exclude, lambda: dense, n,
                                     floor=lambda: floor)
    want = metrics.measure(dense, target, exclude)
    assert (got[0], got[1].tolist()) == (want[0], want[1].tolist())
    # exact_rank=False: a rank beyond k may be a lower bound (still beyond k), same figures
    rank, top = metrics.measure_candidates(rows, dense[rows], target, exclude, lambda: dense,
                                           n, floor=lambda: floor, exact_rank=False)
    assert top.tolist() == want[1].tolist()
    assert rank == want[0] or k < rank <= want[0]
    a, b = RankingPrequential(k=k), RankingPrequential(k=k)
    assert a.record(rank, top, n) == b.record(*want, n) or rank != want[0]
    assert (a.score().hr, a.score().ndcg) == (b.score().hr, b.score().ndcg)


def test_learner_figures_equal_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kernel on (links, trackers, candidates, features, measure) or all off."""
    events = _stream(11, 3000, users=120, items=300)
    runs = []
    for enabled in (True, False):
        for module in (kernels, rank_links, rank_top):
            monkeypatch.setattr(module, "ENABLED", enabled)
        learner = RankingLearner("rerank")
        losses = [learner.learn_one(e) for e in events]
        runs.append((learner.score(), learner.part_scores(), np.array(losses)))
    (a, parts_a, loss_a), (b, parts_b, loss_b) = runs
    assert a.n == b.n > 1000
    for field in ("hr", "ndcg", "coverage", "novelty", "rolling_hr", "rolling_ndcg"):
        assert getattr(a, field) == pytest.approx(getattr(b, field), abs=1e-9)
    assert np.allclose(loss_a, loss_b, equal_nan=True, atol=1e-9)
    # the sparse per-part path (co-occurrence, sequence) gives the dense path's figures
    assert len(parts_a) == 3 and parts_a == parts_b


def test_snapshot_drops_scratch_and_continues_equal() -> None:
    events = _stream(5, 600)
    whole = RankingLearner("rerank")
    for e in events:
        whole.learn_one(e)
    first = RankingLearner("rerank")
    for e in events[:300]:
        first.learn_one(e)
    state = pickle.dumps(first.ranker)
    assert b"_buffers_" not in state and b"_mask" not in state
    resumed = RankingLearner.restore(first.snapshot())
    for e in events[300:]:
        resumed.learn_one(e)
    assert resumed.score() == whole.score()


def test_an_older_checkpoint_cache_is_ignored() -> None:
    model = _learned(8)
    user = next(iter(model._last_ts))
    rows, feats, raw, ctx = model._scored(user, model._clock)
    model._cache = (user, model._events, model._clock, rows, feats, ctx)  # round-4 layout
    clone = pickle.loads(pickle.dumps(model))
    clone.__dict__["_cache"] = model._cache
    again = clone._scored(user, model._clock)
    assert again[0].tolist() == rows.tolist() and np.array_equal(again[2], raw)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), spread=st.sampled_from([1, 7, 400]))
def test_part_scores_are_the_non_zero_dense_scores(seed: int, spread: int) -> None:
    """Both ways of listing a part's rows (a scan of their span, or a sort) give score_items."""
    model = ListwiseRerank(n_popular=5, n_personal=5)
    for t, event in enumerate(_stream(seed, 300, users=12, items=40)):
        model.learn_one(event.user_id, int(event.item_id[1:]) * spread, 1.0, event.ts + t)
    buf = np.zeros(model.n_items + 3)
    compared = 0
    for part in (model.co_occurrence, model.sequence):
        for user in model._last_ts:
            dense = part.score_items(user)
            rows, values = kernels.part_scores(*part.kernel_args(user), buf)
            assert not buf.any()
            want = np.flatnonzero(dense)
            assert rows.tolist() == want.tolist()
            assert values.tolist() == dense[want].tolist()  # bit for bit
            compared += len(rows) > 0
    assert compared > 5


def test_rescale_kernel_equals_numpy_across_renormalisations(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The popularity scales and counts (one kernel per event) through many renormalisations."""
    from learning import rank_rerank

    monkeypatch.setattr(rank_rerank, "_RENORM_AT", 50.0)  # renormalise every ~400 events
    models = []
    for enabled in (True, False):
        monkeypatch.setattr(rank_top, "ENABLED", enabled)
        model = ListwiseRerank(n_popular=4, n_personal=4)
        renormalised = 0
        for t, event in enumerate(_stream(8, 1500)):
            tref = model._tref
            model.learn_one(event.user_id, int(event.item_id[1:]), 1.0, event.ts + t)
            renormalised += tref == tref and model._tref != tref
        models.append((model, renormalised))
    (a, renorm_a), (b, renorm_b) = models
    assert renorm_a == renorm_b > 3
    assert np.array_equal(a._counts, b._counts) and np.array_equal(a._scale, b._scale)
    assert np.array_equal(a._by_state, b._by_state) and a._tref == b._tref
    assert np.array_equal(a._trackers.rows, b._trackers.rows)
    assert np.array_equal(a._trackers.meta, b._trackers.meta)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.sampled_from([0.0, -0.0, 1.5, -2.0, 3.0, np.nan, np.inf]),
                       max_size=45),
       cuts=st.sampled_from([[1, 3, 10, 30], [2], [0, 5]]))
def test_popularity_places_equal_a_stable_sort(values: list[float], cuts: list[int]) -> None:
    """The pop_top flags from a short best-first list: argsort(-x, stable)'s places."""
    from learning.rank_kernels_features import _popularity_places

    f = np.full((len(values), 26), 7.0)
    f[:, 1] = values
    _popularity_places(f, np.array(cuts))
    order = np.empty(len(values), dtype=np.int64)
    order[np.argsort(-f[:, 1], kind="stable")] = np.arange(len(values))
    want = (order[:, None] < np.array(cuts)).astype(float)
    assert np.array_equal(f[:, 14:14 + len(cuts)], want)
    assert (f[:, 14 + len(cuts):] == 7.0).all() and (np.delete(f[:, :14], 1, axis=1) == 7.0).all()
