import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.replay import ReplayBuffer


def _batch(start, n):
    r = np.arange(start, start + n)
    return r, r + 1000, r.astype(np.float32), r.astype(np.float64)


@settings(max_examples=50, deadline=None)
@given(capacity=st.integers(1, 40), window=st.integers(0, 39),
       sizes=st.lists(st.integers(0, 60), max_size=12), seed=st.integers(0, 5))
def test_size_never_exceeds_capacity_and_ring_holds_the_latest(capacity, window, sizes, seed):
    window = min(window, capacity - 1)
    buf = ReplayBuffer(capacity, recent_share=0.5, recent_window=window, seed=seed)
    seen = 0
    for n in sizes:
        buf.add_batch(*_batch(seen, n))
        seen += n
        assert len(buf) <= capacity and buf.seen == seen
        assert buf.reservoir_len == min(seen, capacity - window)
        state = buf.snapshot()
        latest = set(range(max(0, seen - window), seen))
        assert set(state["recent.user_row"].tolist()) == latest
        res = state["reservoir.user_row"]
        assert len(set(res.tolist())) == res.size  # each sample at most once
        assert np.array_equal(state["reservoir.item_row"], res + 1000)
    u, i, v = buf.sample(7)
    assert u.size == (7 if seen else 0)
    assert np.array_equal(i, u + 1000) and np.array_equal(v, u.astype(np.float32))


def test_reservoir_keeps_each_item_with_probability_k_over_seen():
    k, n, trials = 50, 500, 400
    counts = np.zeros(n)
    batch_rng = np.random.default_rng(123)
    for seed in range(trials):
        buf = ReplayBuffer(capacity=k, recent_window=0, seed=seed)
        cuts = np.sort(batch_rng.integers(0, n, 4))
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True):
            buf.add_batch(*_batch(a, b - a))
        counts[buf.snapshot()["reservoir.user_row"]] += 1
    freq = counts / trials
    for part in np.array_split(freq, 5):  # early, ..., late items alike
        assert part.mean() == pytest.approx(k / n, abs=0.01)


def test_sample_mixes_strata_by_recent_share():
    buf = ReplayBuffer(capacity=1100, recent_share=0.25, recent_window=100, seed=1)
    buf.add_batch(*_batch(0, 100_000))
    u, _, _ = buf.sample(4000)
    assert (u[:1000] >= 99_900).all()
    assert (u[1000:] < 99_900).mean() > 0.95


def test_drop_rows_removes_references_and_keeps_ring_order():
    buf = ReplayBuffer(capacity=30, recent_window=10, seed=2)
    buf.add_batch(*_batch(0, 25))
    dropped = buf.drop_rows(user_rows=[3, 22], item_rows=[1024])
    state = buf.snapshot()
    assert dropped == 5  # 3 in the reservoir; 22 and 24 (item 1024) in both strata
    assert state["recent.user_row"].tolist() == [15, 16, 17, 18, 19, 20, 21, 23]
    assert not {3, 22, 24} & set(state["reservoir.user_row"].tolist())
    buf.add_batch(*_batch(25, 3))
    recent = sorted(buf.snapshot()["recent.user_row"].tolist())
    assert recent == [16, 17, 18, 19, 20, 21, 23, 25, 26, 27]  # 15, the oldest, went


def test_snapshot_restore_continue_equals_uninterrupted():
    a = ReplayBuffer(capacity=60, recent_window=15, seed=9)
    b = ReplayBuffer(capacity=60, recent_window=15, seed=9)
    out_a, out_b = [], []
    for step in range(12):
        if step == 6:
            b = ReplayBuffer.restore(b.snapshot())
        for buf, out in ((a, out_a), (b, out_b)):
            buf.add_batch(*_batch(step * 17, 17))
            out.append([x.tolist() for x in buf.sample(9)])
    assert out_a == out_b


def test_bad_configuration():
    with pytest.raises(ValueError, match="recent_window"):
        ReplayBuffer(capacity=10, recent_window=10)
    with pytest.raises(ValueError, match="equal length"):
        ReplayBuffer(capacity=10, recent_window=2).add_batch([1], [1, 2], [1.0], [1.0])
