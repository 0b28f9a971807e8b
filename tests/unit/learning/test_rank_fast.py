"""The fast paths give exactly what the straightforward dense computations give."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.rank_blend import SessionBlend
from learning.rank_sequence import CoOccurrence
from learning.ranking_learner import RankingLearner
from learning.ranking_metrics import RankingPrequential, rank_of
from stream.schema import Event


def _stream(seed: int, n: int, users: int, items: int):
    rng = np.random.default_rng(seed)
    pop = rng.zipf(1.5, size=items * 4) % items  # skewed, with repeats and ties
    for t in range(n):
        yield f"u{int(rng.integers(0, users))}", int(pop[int(rng.integers(0, len(pop)))]), (
            float(t * int(rng.integers(1, 3000))))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), users=st.integers(1, 30), items=st.integers(2, 60))
def test_candidate_ranks_equal_rank_of_the_dense_mixes(seed, users, items):
    blend = SessionBlend(session_gap=5000.0)
    checked = 0
    for user, item, ts in _stream(seed, 300, users, items):
        seen = blend._seen.get(user)
        if seen and item < blend.n_items and item not in seen:
            exclude = np.fromiter(seen, np.int64, len(seen))
            fast = blend.candidate_ranks(user, item, exclude)
            slow = rank_of(blend.candidate_mixes(user), item, exclude)
            assert fast.tolist() == slow.tolist()
            checked += 1
        blend.score_items(user, now=ts)
        blend.learn_one(user, item, ts=ts)


def test_candidate_ranks_with_many_ties_and_exclusions():
    blend = SessionBlend()
    rng = np.random.default_rng(3)
    checked = 0
    for t in range(2000):
        user, item = f"u{t % 7}", int(rng.integers(0, 25))
        seen = blend._seen.get(user)
        if seen and item < blend.n_items and item not in seen:
            exclude = np.fromiter(seen, np.int64, len(seen))
            assert (blend.candidate_ranks(user, item, exclude).tolist()
                    == rank_of(blend.candidate_mixes(user), item, exclude).tolist())
            checked += 1
        blend.learn_one(user, item, ts=float(t))
    assert checked > 100


def _dict_reference(events, history, symmetric, decay, position_decay, max_neighbours):
    """The former dict-of-dicts CoOccurrence, kept here as the straightforward reference."""
    links, totals, recent, scale = {}, {}, {}, 1.0

    def link(a, b, value):
        row = links.setdefault(a, {})
        row[b] = row.get(b, 0.0) + value
        totals[a] = totals.get(a, 0.0) + value
        if len(row) > 2 * max_neighbours:
            kept = sorted(row.items(), key=lambda kv: kv[1], reverse=True)[:max_neighbours]
            links[a] = dict(kept)
            totals[a] = sum(v for _, v in kept)

    for user, item in events:
        scale /= decay
        strength = scale
        last = recent.setdefault(user, [])
        for prev in reversed(last):
            if prev != item:
                link(prev, item, strength)
                if symmetric:
                    link(item, prev, strength)
            strength *= position_decay
        last.append(item)
        del last[:-history]
    return links, totals


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), symmetric=st.booleans(), history=st.integers(1, 5),
       max_neighbours=st.integers(1, 6))
def test_array_rows_hold_exactly_what_dicts_held(seed, symmetric, history, max_neighbours):
    rng = np.random.default_rng(seed)
    events = [(f"u{int(rng.integers(0, 8))}", int(rng.integers(0, 30))) for _ in range(400)]
    co = CoOccurrence(history, symmetric=symmetric, decay=0.999, position_decay=0.7,
                      max_neighbours=max_neighbours)
    for user, item in events:
        co.learn_one(user, item)
    links, totals = _dict_reference(events, history, symmetric, 0.999, 0.7, max_neighbours)
    for a, row in links.items():
        keys, values = co._table.slots(a)  # learning/rank_links.py: flat arrays
        assert dict(zip(keys.tolist(), values.tolist(), strict=True)) == row
        assert keys.tolist() == list(row)  # same order: same float sums
        assert co._table.total[a] == totals[a]
    assert {a for a in range(co.n_items) if len(co._table.slots(a)[0])} == set(links)
    for user in {u for u, _ in events}:
        support = co.support(user)
        scores = co.score_items(user)
        assert set(np.flatnonzero(scores).tolist()) <= set(support.tolist())


def test_learner_figures_equal_plain_updates_on_the_blend_scores():
    """The learner shares the popularity part's rank and top-k when the blend is pure
    popularity; the figures must equal updating a fresh metric with the blend's scores."""
    learner = RankingLearner("blend")
    reference = RankingPrequential(learner.k, learner.window)
    shared = 0
    for n, (user, item, ts) in enumerate(_stream(5, 3000, 40, 80)):
        row = learner._index.get(str(item))
        seen = learner._seen.get(user)
        if seen is not None and row is not None and row not in seen:
            blend = learner.ranker
            shared += blend.weights(blend.state(user, ts)) == (0.0, 0.0)
            reference.update(blend.score_items(user, now=ts), row,
                             np.fromiter(seen, np.int64, len(seen)),
                             popularity=learner._counts[: len(learner._ids)],
                             popularity_total=learner.events_seen)
        learner.learn_one(Event(f"e{n}", user, str(item), "click", 1.0, ts))
    assert shared > 0 and reference.n > shared
    assert learner.score() == reference.score()
