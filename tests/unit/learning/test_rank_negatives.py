"""Rankers that learn the impression join's negatives (shown, not clicked)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.rank_bpr import BPR
from learning.rank_rerank import ListwiseRerank
from learning.ranking_learner import RankingLearner
from stream.schema import Event
from tests.unit.learning.test_rank_deep_follow import backlog, trained  # noqa: F401


def test_bpr_pushes_an_unclicked_item_down_for_that_user() -> None:
    bpr = BPR(n_factors=4, seed=1)
    for _ in range(20):
        for user, item in [("a", 0), ("a", 1), ("b", 2), ("b", 3), ("a", 2)]:
            bpr.learn_one(user, item)
    before = bpr.score_items("a")
    for _ in range(5):
        bpr.learn_negative("a", 2)
    after = bpr.score_items("a")
    assert after[2] < before[2]
    assert after[2] - before[2] < (after - before)[[0, 1, 3]].min()  # it moved down most
    state = bpr.score_items("b").copy(), bpr.score_items("a").copy()
    bpr.learn_negative("nobody", 1)
    bpr.learn_negative("a", 99)  # unknown user / item: nothing changes
    assert np.array_equal(state[0], bpr.score_items("b"))
    assert np.array_equal(state[1], bpr.score_items("a"))


def test_the_ranking_learner_hands_negatives_to_its_ranker() -> None:
    learner = RankingLearner("bpr")
    for e in backlog():
        learner.learn_one(e)
    row = learner.item_ids().index("i4")
    before = learner.ranker.score_items("u0")[row]
    assert learner.learn_negative("u0", "i4", ts=1e4)
    assert learner.ranker.score_items("u0")[row] < before  # the model learned it
    assert learner.negatives_learned == 1


def test_the_followed_deep_part_folds_a_negative_away(trained) -> None:  # noqa: F811
    learner = RankingLearner("bpr", follow_deep=True)
    for e in backlog():
        learner.learn_one(e)
    learner.set_deep(trained, version=1)
    learner.learn_one(Event("p", "u0", "i2", "click", 1.0, 1e4))  # a fold-in to move
    row = learner.item_ids().index("i6")
    deep, bpr = learner.ranker.deep, learner.ranker.base
    deep.negative_share = 0.25  # the fold-in step is off by default
    before = deep.score_items("u0")[row], bpr.score_items("u0")[row]
    assert learner.learn_negative("u0", "i6", ts=1e4 + 1)
    assert deep.score_items("u0")[row] < before[0] and bpr.score_items("u0")[row] < before[1]
    fresh = deep.score_items("someone-else")
    learner.learn_negative("someone-else", "i6")  # no fold yet: starts one, away from i6
    assert deep.score_items("someone-else")[row] < fresh[row]


# the default ranker (rerank): a listwise step on log(1 - p) and a shown-and-skipped memory
def _rerank_stream(seed: int, n: int = 300, users: int = 8, items: int = 30):
    rng = np.random.default_rng(seed)
    for k in range(n):
        yield f"u{int(rng.integers(users))}", int(rng.zipf(1.3) % items), float(k) * 60.0


def _trained_rerank(seed: int):
    r = ListwiseRerank(n_popular=10, n_personal=10)
    for user, item, ts in _rerank_stream(seed):
        r.learn_one(user, item, ts=ts)
    return r


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), pick=st.integers(0, 100))
def test_a_negative_lowers_that_items_score_for_that_user_in_rerank(seed, pick):
    r = _trained_rerank(seed)
    user = "u0" if "u0" in r._last_ts else next(iter(r._last_ts))
    rows, values = r.candidate_scores(user)
    unseen = [int(x) for x in rows if int(x) not in r._seen[user]]
    if len(unseen) < 2:
        return
    item = unseen[pick % len(unseen)]
    before = dict(zip(rows.tolist(), values.tolist(), strict=True))
    others = [x for x in unseen if x != item]

    def share(scores: dict[int, float]) -> float:  # the item's softmax share of the unseen
        z = np.array([scores[x] for x in unseen])
        return float(np.exp(scores[item] - z.max()) / np.exp(z - z.max()).sum())

    # the listwise step alone (no memory, no pairwise step) descends log(1 - p_item): a
    # small step lowers the item's share; a shared linear step may lower another item more
    # (features in common), so per-pair order is the memory's promise, not the step's
    step = _trained_rerank(seed)
    step.negative_weight, step.pair_weight, step.skip_penalty, step.lr = 0.5, 0.0, 0.0, 1e-4
    w = step._w.copy()
    step.learn_negative(user, item, ts=step._clock)
    after = dict(zip(*(a.tolist() for a in step.candidate_scores(user)), strict=True))
    assert not np.array_equal(w, step._w)  # the listwise step was taken
    assert share(after) < share(before)
    # the memory alone: the item drops by skip_penalty against every other unseen candidate
    r.pair_weight = 0.0
    w = r._w.copy()
    r.learn_negative(user, item, ts=r._clock)
    after = dict(zip(*(a.tolist() for a in r.candidate_scores(user)), strict=True))
    assert r.skipped(user)[item] == pytest.approx(r.skip_penalty)
    assert all(after[item] - after[x] == pytest.approx(before[item] - before[x] - r.skip_penalty)
               for x in others)
    assert np.array_equal(w, r._w)


def _shown_after_a_positive(seed: int, pick: int):
    """A trained reranker, user u3 just after a positive, and one of u3's unseen candidates
    (``None`` when u3 has none): the slate a negative comes from."""
    r = _trained_rerank(seed)
    user, now = "u3", r._clock + 5.0
    r.learn_one(user, 1, ts=now)  # the positive of the slate
    rows = r._scored(user, now + 1.0)[0]
    unseen = [int(x) for x in rows if int(x) not in r._seen[user]]
    return (r, user, now, unseen[pick % len(unseen)]) if unseen else None


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), pick=st.integers(0, 100))
def test_a_negative_after_a_positive_moves_the_pair_apart_in_rerank(seed, pick):
    if (shown := _shown_after_a_positive(seed, pick)) is None:
        return
    r, user, now, item = shown
    ctx = r._scored(user, now + 1.0)[3]
    w = r.weights(ctx).copy()
    r.learn_negative(user, item, ts=now + 1.0)
    _, rows2, feats, _ = r._pair_cache
    diff = feats[int(np.searchsorted(rows2, 1))] - feats[int(np.searchsorted(rows2, item))]
    assert diff @ r.weights(ctx) > diff @ w  # the positive now beats the shown item by more
    late = _trained_rerank(seed)
    late.learn_one(user, 1, ts=now)
    w = late._w.copy()
    late.learn_negative(user, item, ts=now + late.pair_window + 1.0)  # too late: no step
    assert np.array_equal(w, late._w)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), pick=st.integers(0, 100))
def test_rerank_scores_after_a_negative_come_from_the_new_weights(seed, pick):
    """The scored-candidates cache must not serve raw scores of the weights before a step."""
    if (shown := _shown_after_a_positive(seed, pick)) is None:
        return
    r, user, now, item = shown
    r.candidate_scores(user, now + 1.0)  # fills the cache
    r.learn_negative(user, item, ts=now + 1.0)
    fresh = pickle.loads(pickle.dumps(r))  # no cache travels in a pickle
    got, expected = r.candidate_scores(user, now + 1.0), fresh.candidate_scores(user, now + 1.0)
    assert np.array_equal(got[0], expected[0])
    assert np.allclose(got[1], expected[1], rtol=0, atol=1e-12)


def test_the_rerank_skip_memory_is_bounded_fades_and_stacks():
    r = _trained_rerank(1)
    user, now = "u1", r._clock
    r.learn_negative(user, 3, ts=now)
    r.learn_negative(user, 3, ts=now)
    assert r.skipped(user, now)[3] == pytest.approx(2 * r.skip_penalty)
    later = now + r.skip_time_scale
    assert r.skipped(user, later)[3] == pytest.approx(2 * r.skip_penalty / math.e)
    for _ in range(5):
        r.learn_negative(user, 4, ts=now)
    assert r.skipped(user, now)[4] == pytest.approx(r.skip_cap * r.skip_penalty)
    for row in range(r.n_items):
        r.learn_negative(user, row, ts=now + row)
    assert len(r.skipped(user)) == min(r.max_skipped, r.n_items)
    assert r.n_items - 1 in r.skipped(user)  # the most recent kept, the oldest gone
    state = r.score_items("u2").copy()
    r.learn_negative("u2", 10_000, ts=now)  # an unknown item: nothing changes
    assert np.array_equal(state, r.score_items("u2"))
    r.learn_negative("never-seen", 2, ts=now)  # a cold user: no step, but remembered
    assert 2 in r.skipped("never-seen")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(1, 299))
def test_rerank_with_negatives_snapshot_restore_continue_equals_uninterrupted(seed, cut):
    rng = np.random.default_rng(seed + 1)

    def run(model, events):
        for user, item, ts in events:
            model.learn_one(user, item, ts=ts)
            if rng_flags.pop(0):
                model.learn_negative(user, (item * 7 + 3) % 30, ts=ts + 1.0)

    events = list(_rerank_stream(seed))
    flags = (rng.random(len(events)) < 0.5).tolist()
    rng_flags = list(flags)
    whole = ListwiseRerank(n_popular=10, n_personal=10)
    whole.negative_weight = 0.5
    run(whole, events)
    rng_flags = list(flags)
    first = ListwiseRerank(n_popular=10, n_personal=10)
    first.negative_weight = 0.5
    run(first, events[:cut])
    clone = pickle.loads(pickle.dumps(first))
    run(clone, events[cut:])
    assert np.array_equal(clone._w, whole._w)
    for user in whole._last_ts:
        assert clone.skipped(user) == whole.skipped(user)
        assert np.array_equal(clone.score_items(user), whole.score_items(user))


def test_the_ranking_learner_leaves_reranks_negatives_to_it():
    learner = RankingLearner("rerank")
    for e in backlog():
        learner.learn_one(e)
    row = learner.item_ids().index("i4")
    before = learner.score_items("u0").copy()
    assert learner.learn_negative("u0", "i4", ts=1e4)
    after = learner.score_items("u0")
    assert after[row] < before[row]
    # one discount (the ranker's), not the learner's on top of it
    assert np.array_equal(after, learner.ranker.score_items("u0"))
    assert learner.forget_user("u0") > 0
    assert "u0" not in learner.ranker.__dict__["_skipped"]
