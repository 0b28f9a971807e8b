import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.ranking_metrics import RankingPrequential, rank_of, top_k


def _reference_order(scores, exclude=()):
    """Rows best first by a full stable sort, ties to the newer row, excluded rows dropped."""
    rows = [r for r in range(len(scores)) if r not in set(exclude)]
    return sorted(rows, key=lambda r: (-scores[r], -r))


def test_hand_computed_hit_and_ndcg():
    m = RankingPrequential(k=3)
    out = m.update(np.array([0.1, 0.9, 0.5, 0.7]), target=2)  # 1 and 3 above: rank 3
    assert out.rank == 3 and out.hit and math.isclose(out.ndcg, 1 / math.log2(4))
    out = m.update(np.array([0.1, 0.9, 0.5, 0.7]), target=0)  # rank 4 > k: miss
    assert out.rank == 4 and not out.hit and out.ndcg == 0.0
    out = m.update(np.array([0.1, 0.9, 0.5, 0.7]), target=0, exclude=np.array([1, 3]))
    assert out.rank == 2 and math.isclose(out.ndcg, 1 / math.log2(3))
    s = m.score()
    assert s.n == 3 and math.isclose(s.hr, 2 / 3)
    assert math.isclose(s.ndcg, (0.5 + 0 + 1 / math.log2(3)) / 3)
    assert s.coverage == 1.0  # lists [1,3,2], [1,3,2], [2,0]
    assert s.intra_list_diversity is None


def test_ties_go_to_the_newer_item():
    assert int(rank_of(np.array([1.0, 1.0, 1.0]), 2)) == 1
    assert int(rank_of(np.array([1.0, 1.0, 1.0]), 0)) == 3
    assert top_k(np.zeros(5), 2).tolist() == [4, 3]


def test_novelty_and_diversity_by_hand():
    m = RankingPrequential(k=2)
    counts = np.array([2.0, 1.0, 1.0])  # shares 1/2, 1/4, 1/4
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    m.update(np.array([3.0, 2.0, 1.0]), target=2, popularity=counts, item_vectors=vectors)
    s = m.score()
    assert math.isclose(s.novelty, (1 + 2) / 2)  # -log2(1/2), -log2(1/4)
    assert math.isclose(s.intra_list_diversity, 1.0)  # orthogonal pair: cosine distance 1


def test_rolling_window_only_counts_the_last_lists():
    m = RankingPrequential(k=1, window=2)
    for target in (0, 1, 1):
        m.update(np.array([1.0, 0.0]), target=target)
    s = m.score()
    assert math.isclose(s.hr, 1 / 3) and s.rolling_hr == 0.0 and s.rolling_coverage == 0.5


scores_st = st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]) | st.floats(0, 10),
                     min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(scores_st, st.data())
def test_rank_and_top_k_match_a_full_sort(values, data):
    scores = np.array(values)
    n = len(scores)
    exclude = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n - 1))
    target = data.draw(st.sampled_from([r for r in range(n) if r not in exclude]))
    order = _reference_order(scores, exclude)
    ex = np.array(exclude, dtype=np.int64)
    assert int(rank_of(scores, target, ex)) == order.index(target) + 1
    k = data.draw(st.integers(1, 12))
    assert top_k(scores, k, ex).tolist() == order[:k]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(scores_st, st.integers(0, 59)), min_size=1, max_size=20))
def test_ndcg_in_unit_interval_and_hr_monotone_in_k(events):
    metrics = {k: RankingPrequential(k=k) for k in (1, 3, 5, 10)}
    for values, target in events:
        scores = np.array(values)
        for m in metrics.values():
            m.update(scores, target=target % len(scores))
    hrs = [metrics[k].score().hr for k in (1, 3, 5, 10)]
    assert hrs == sorted(hrs)
    for m in metrics.values():
        s = m.score()
        assert 0.0 <= s.ndcg <= s.hr <= 1.0 and 0.0 < s.coverage <= 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 29), min_size=1, max_size=40))
def test_a_perfect_oracle_scores_one(targets):
    m = RankingPrequential(k=10)
    for t in targets:
        scores = np.zeros(30)
        scores[t] = 1.0  # the oracle knows the next item
        m.update(scores, target=t)
    s = m.score()
    assert s.hr == 1.0 and s.ndcg == 1.0


def test_snapshot_restore_continue_equals_uninterrupted():
    rng = np.random.default_rng(3)
    events = [(rng.random(20), int(rng.integers(0, 20))) for _ in range(50)]
    whole, half = RankingPrequential(k=5, window=7), RankingPrequential(k=5, window=7)
    for scores, t in events[:25]:
        whole.update(scores, t)
        half.update(scores, t)
    resumed = RankingPrequential.restore(half.snapshot())
    for scores, t in events[25:]:
        whole.update(scores, t)
        resumed.update(scores, t)
    assert resumed.score() == whole.score()
