import math

import numpy as np
import pytest

from learning.rank_blend import SessionBlend
from learning.rank_bpr import BPR
from learning.rank_sequence import CoOccurrence
from learning.rankers import Popularity, Ranker


def test_decayed_popularity_equals_the_explicit_sum_across_renormalisation():
    decay = 0.5  # the scale passes the renormalisation threshold after ~500 events
    pop = Popularity(decay=decay)
    items = [i % 3 for i in range(1200)]
    for item in items:
        pop.learn_one("u", item)
    n = len(items)
    expected = [sum(decay ** (n - 1 - t) for t, it in enumerate(items) if it == row)
                for row in range(3)]
    assert np.allclose(pop.score_items("x"), expected)
    assert math.isclose(pop.share().sum(), 1.0)


def test_all_time_popularity_counts_weights():
    pop = Popularity(decay=1.0)
    for item, w in [(0, 1.0), (1, 4.0), (0, 2.0)]:
        pop.learn_one("u", item, weight=w)
    assert pop.score_items("v").tolist() == [3.0, 4.0]


@pytest.mark.parametrize("bad", [0.0, 1.5])
def test_popularity_refuses_a_bad_decay(bad):
    with pytest.raises(ValueError, match="decay"):
        Popularity(decay=bad)


def test_sequence_scores_what_followed_the_users_last_item():
    seq = CoOccurrence(history=1, symmetric=False, decay=1.0)
    for user, item in [("a", 0), ("a", 1), ("b", 0), ("b", 2), ("c", 0), ("c", 1)]:
        seq.learn_one(user, item)
    seq.learn_one("d", 0)
    assert seq.score_items("d").round(3).tolist() == [0.0, 0.667, 0.333]
    assert seq.score_items("a").tolist() == [0.0, 0.0, 0.0]  # nothing ever followed 1


def test_co_occurrence_memory_is_bounded():
    co = CoOccurrence(history=3, max_neighbours=5)
    rng = np.random.default_rng(0)
    for t in range(3000):
        co.learn_one(f"u{t % 50}", int(rng.integers(0, 200)))
    assert max(len(co.neighbours(i)) for i in range(co.n_items)) <= 10
    assert co.score_items("u1").shape == (co.n_items,)


def test_bpr_is_seeded_and_learns_the_users_side():
    def run(seed):
        bpr = BPR(n_factors=8, seed=seed)
        for _ in range(40):
            for user, item in [("a", 0), ("a", 1), ("b", 2), ("b", 3), ("c", 4)]:
                bpr.learn_one(user, item)
        return bpr
    one, two = run(5), run(5)
    assert np.array_equal(one.score_items("a"), two.score_items("a"))
    s = one.score_items("a")
    assert min(s[0], s[1]) > max(s[2], s[3])
    pop = BPR(n_factors=8, sampling="popularity", seed=1)
    for item in [0, 0, 0, 1, 2]:
        pop.learn_one("u", item)
    assert pop.score_items("nobody").shape == (3,)


@pytest.mark.parametrize("ranker", [Popularity(), CoOccurrence(), BPR(4), SessionBlend()])
def test_every_ranker_follows_the_protocol(ranker):
    assert isinstance(ranker, Ranker)
    for t, (user, item) in enumerate([("a", 0), ("b", 1), ("a", 2), ("b", 0)]):
        ranker.learn_one(user, item, 1.0, float(t))
    for user in ("a", "new"):
        s = ranker.score_items(user)
        assert s.dtype == np.float64 and s.shape == (3,) and np.isfinite(s).all()


def test_blend_gives_cold_users_popularity_and_a_burst_changes_the_list():
    blend = SessionBlend()
    rng = np.random.default_rng(1)
    t = 0.0
    # a popular head (items 0..4) and pairs that go together (10+2j, 11+2j)
    for _ in range(400):
        t += 100.0
        blend.learn_one(f"p{int(rng.integers(0, 100))}", int(rng.integers(0, 5)), ts=t)
    for j in range(20):
        for u in range(3):
            t += 1.0
            blend.learn_one(f"q{j}-{u}", 10 + 2 * j, ts=t)
            t += 1.0
            blend.learn_one(f"q{j}-{u}", 11 + 2 * j, ts=t)
            # credit the co-occurrence weights: score then learn, as the learner does
    cold = blend.score_items("newcomer", now=t)
    assert set(np.argsort(-cold)[:5].tolist()) == {0, 1, 2, 3, 4}
    assert blend.state("newcomer") == "cold" and blend.weights("cold") == (0.0, 0.0)
    for j in range(20):  # the burst: a user who takes the first item of several pairs
        t += 1.0
        blend.score_items("fan", now=t)
        blend.learn_one("fan", 10 + 2 * j, ts=t)
        t += 1.0
        blend.score_items("fan", now=t)
        blend.learn_one("fan", 11 + 2 * j, ts=t)
    t += 1.0
    blend.learn_one("fan2", 10, ts=t)
    personal = blend.score_items("fan2", now=t + 1)
    assert int(np.argmax(np.where(np.arange(len(personal)) == 10, -np.inf, personal))) == 11
    assert blend.weights("session") != (0.0, 0.0)


def test_blend_snapshot_continues_like_an_uninterrupted_run():
    import pickle

    rng = np.random.default_rng(2)
    events = [(f"u{int(rng.integers(0, 20))}", int(rng.integers(0, 30)), float(i * 50))
              for i in range(400)]
    whole = SessionBlend()
    for user, item, ts in events[:200]:
        whole.score_items(user, now=ts)
        whole.learn_one(user, item, ts=ts)
    resumed = pickle.loads(pickle.dumps(whole))
    for model in (whole, resumed):
        for user, item, ts in events[200:]:
            model.score_items(user, now=ts)
            model.learn_one(user, item, ts=ts)
    assert np.array_equal(whole.score_items("u3"), resumed.score_items("u3"))
    assert all(np.array_equal(whole._gains[s], resumed._gains[s]) for s in whole._gains)
