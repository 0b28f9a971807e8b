"""The candidate reranker: exact top trackers, fast path == dense path, it learns, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.rank_rerank import FEATURES, ListwiseRerank
from learning.rank_top import TopTracker
from learning.ranking_learner import RankingLearner
from learning.ranking_metrics import RankingPrequential
from stream.schema import Event
from stream.synthetic_implicit import ImplicitStream


def _stream(seed: int, n: int, users: int, items: int):
    rng = np.random.default_rng(seed)
    pop = rng.zipf(1.5, size=items * 4) % items  # skewed, with repeats and ties
    t = 0.0
    for _ in range(n):
        t += float(rng.choice([1.0, 60.0, 5000.0, 200_000.0]))
        yield f"u{int(rng.integers(0, users))}", int(pop[int(rng.integers(0, len(pop)))]), t


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 8), items=st.integers(1, 40),
       decay=st.sampled_from([1.0, 0.99, 0.5]))
def test_top_tracker_holds_the_m_largest_counts(seed, m, items, decay):
    rng = np.random.default_rng(seed)
    counts, top = np.zeros(items), TopTracker(m)
    for _ in range(200):
        item = int(rng.integers(0, items))
        counts *= decay  # every count fades alike: order kept
        counts[item] += float(rng.choice([1.0, 2.0]))
        top.update(counts, item)
        seen = np.flatnonzero(counts > 0)
        want = np.sort(counts[seen])[::-1][: min(m, len(seen))]
        assert np.sort(counts[top.rows()])[::-1].tolist() == want.tolist()
        assert counts[top.best] == counts.max()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), users=st.integers(1, 25), items=st.integers(2, 80),
       n_popular=st.integers(1, 12), n_personal=st.integers(1, 12), k=st.integers(1, 10))
def test_candidate_measure_equals_the_dense_measure(seed, users, items, n_popular,
                                                    n_personal, k):
    model = ListwiseRerank(n_popular=n_popular, n_personal=n_personal)
    metrics = RankingPrequential(k=k)
    seen: dict[str, set[int]] = {}
    checked = 0
    for user, item, ts in _stream(seed, 250, users, items):
        s = seen.get(user)
        if s and item < model.n_items and item not in s:
            exclude = np.fromiter(s, np.int64, len(s))
            dense = model.score_items(user, now=ts)
            rows, values = model.candidate_scores(user, now=ts)
            assert np.array_equal(dense[rows], values)
            others = np.delete(dense, rows)
            assert len(others) == 0 or others.max() < values.min()
            fast = metrics.measure_candidates(rows, values, item, exclude,
                                              lambda d=dense: d, model.n_items)
            slow = metrics.measure(dense, item, exclude)
            assert (fast[0], fast[1].tolist()) == (slow[0], slow[1].tolist())
            checked += 1
        model.learn_one(user, item, 1.0, ts)
        seen.setdefault(user, set()).add(item)


def test_cold_users_get_decayed_popularity_and_a_burst_changes_a_list():
    model = ListwiseRerank(n_popular=5, n_personal=5)
    for t, (user, item) in enumerate([("a", 0), ("b", 0), ("c", 1), ("a", 2), ("d", 3)]):
        model.learn_one(user, item, ts=float(t))
    cold = model.score_items("nobody")
    assert cold.shape == (4,) and int(np.argmax(cold)) == 0
    before = model.score_items("e").tolist()
    for t, item in enumerate([3, 1], start=10):
        model.learn_one("e", item, ts=float(t))
    assert model.score_items("e").tolist() != before


def _implicit(n: int) -> list[Event]:
    return list(ImplicitStream(n_users=100, n_items=200, n_events=n, drift_at=(), seed=3))


def test_it_learns_to_beat_its_own_starting_point_decayed_popularity():
    events = _implicit(4000)
    learned, frozen = RankingLearner("rerank"), RankingLearner("rerank")
    frozen.ranker.lr = 0.0  # stays decayed popularity on the same candidates
    for e in events:
        learned.learn_one(e)
        frozen.learn_one(e)
    start = np.zeros(len(FEATURES))
    start[1] = 1.0
    assert not np.allclose(learned.ranker.weights(1), start)
    assert learned.score().n > 500
    assert learned.score().hr > frozen.score().hr + 0.05
    assert learned.score().ndcg > frozen.score().ndcg


def test_seeded_runs_are_identical_and_parts_are_sampled():
    events = _implicit(1500)
    a, b = RankingLearner("rerank"), RankingLearner("rerank")
    for e in events:
        assert math.isnan(la := a.learn_one(e)) == math.isnan(lb := b.learn_one(e))
        assert math.isnan(la) or la == lb
    assert a.score() == b.score() and a.part_scores() == b.part_scores()
    parts = a.part_scores()
    assert set(parts) == {"popularity", "co_occurrence", "sequence"}
    assert 0 < parts["sequence"].n < a.score().n


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="decays"):
        ListwiseRerank(decays=(0.9, 1.0, 0.99))
    with pytest.raises(ValueError, match="half_lives"):
        ListwiseRerank(half_lives=(0.0, 1.0))
    with pytest.raises(ValueError, match="n_popular"):
        ListwiseRerank(n_popular=0)


def _dense_reference_rows(model: ListwiseRerank, user: str) -> np.ndarray:
    """The candidate rows as first written: np.unique of the trackers, dense part supports."""
    mask = np.zeros(model.n_items, dtype=bool)
    mask[np.unique(np.concatenate([t.rows() for t in model._tops]))] = True
    for part in (model.co_occurrence, model.sequence):
        scores = part.score_items(user)
        support = np.flatnonzero(scores)
        if len(support) > model.n_personal:
            keep = np.argpartition(-scores[support], model.n_personal)
            support = support[keep[: model.n_personal]]
        mask[support] = True
    return np.flatnonzero(mask)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), users=st.integers(1, 20), items=st.integers(2, 60),
       n_popular=st.integers(1, 10), n_personal=st.integers(1, 10))
def test_fast_candidates_equal_the_dense_reference(seed, users, items, n_popular, n_personal):
    model = ListwiseRerank(n_popular=n_popular, n_personal=n_personal)
    for user, item, ts in _stream(seed, 200, users, items):
        if model.n_items:
            rows = model._scored(user, ts)[0]
            assert rows.tolist() == _dense_reference_rows(model, user).tolist()
            seen = model._seen.get(user, set())
            if seen:
                want = np.isin(rows, np.fromiter(seen, np.int64, len(seen)))
                assert model._seen_mask(seen, rows).tolist() == want.tolist()
        model.learn_one(user, item, 1.0, ts)


def test_learner_lists_equal_the_dense_lists_event_by_event():
    """Every ranked event of the fast path: the same rank and top-10 as the dense scores."""
    learner = RankingLearner("rerank", part_metrics=False)
    reference = RankingPrequential(k=10)
    ranked = 0
    for e in _implicit(2500):
        row = learner._index.get(e.item_id)
        seen = learner._seen.get(e.user_id)
        want = None
        if seen is not None and row is not None and row not in seen:
            dense = learner.ranker.score_items(e.user_id, now=e.ts)
            want = reference.update(dense, row, np.fromiter(seen, np.int64, len(seen)))
        loss = learner.learn_one(e)
        if want is not None:
            ranked += 1
            assert loss == 1.0 - want.ndcg
            assert learner._metrics._recent[-1][2] == want.top
    got, want_score = learner.score(), reference.score()
    assert ranked > 500
    assert (got.n, got.hr, got.ndcg, got.coverage) == (
        want_score.n, want_score.hr, want_score.ndcg, want_score.coverage)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5, -1.0]), min_size=1,
                       max_size=80), k=st.integers(1, 10))
def test_best_first_equals_a_full_lexsort(values, k):
    from learning.ranking_metrics import _best_first

    vals = np.array(values)
    rows = np.arange(len(vals)) * 3 + 1
    k = min(k, len(vals))
    want = rows[np.lexsort((-rows, -vals))[:k]]
    assert _best_first(rows, vals, k).tolist() == want.tolist()
