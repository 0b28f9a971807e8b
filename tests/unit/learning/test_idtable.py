import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.idtable import IdTable

# A step: (ids looked up, time advance); ids drawn from a small alphabet so they repeat.
steps = st.lists(
    st.tuples(st.lists(st.sampled_from([f"id{k}" for k in range(12)]), max_size=6),
              st.floats(min_value=0.0, max_value=4.0)),
    max_size=30)


@settings(max_examples=60, deadline=None)
@given(steps=steps)
def test_rows_unique_stable_until_eviction_and_bounded(steps):
    table = IdTable(capacity_hint=2, ttl_seconds=5.0)
    now, known, peak = 0.0, {}, 0
    for ids, dt in steps:
        now += dt
        evicted = set(table.evict(now).tolist())
        for key, row in list(known.items()):
            if row in evicted:
                del known[key]
                assert key not in table
        rows = table.lookup(ids, now)
        new_rows = set(table.last_new_rows.tolist())
        before = dict(known)
        for key, row in zip(ids, rows.tolist(), strict=True):
            if key in before:
                assert known[key] == row  # stable until evicted
                assert row not in new_rows
            else:
                assert row in new_rows  # an evicted or new id gets a (re)assigned row
                assert known.setdefault(key, row) == row
        live = {table.id_of(r): r for r in range(table.rows) if table.id_of(r) is not None}
        assert live == known
        assert len(set(live.values())) == len(live)  # no two live ids share a row
        peak = max(peak, table.size)
        assert table.rows <= peak  # memory bounded by the peak of live ids
        assert len(table) == table.size == len(known)


def test_evicted_id_gets_a_fresh_assignment_and_row_is_reused():
    table = IdTable(ttl_seconds=1.0)
    table.lookup(["a", "b"], now=0.0)
    table.lookup(["b"], now=5.0)
    assert table.evict(5.0).tolist() == [0]
    rows = table.lookup(["c", "a"], now=5.0)
    assert rows.tolist() == [0, 2]
    assert table.last_new_rows.tolist() == [0, 2]


def test_lookup_without_add_reads_only():
    table = IdTable()
    table.lookup(["a"], now=1.0)
    assert table.lookup(["a", "b"], now=9.0, add=False).tolist() == [0, -1]
    assert table.size == 1 and table.last_seen.tolist() == [1.0]


def test_no_ttl_never_evicts_and_table_grows():
    table = IdTable(capacity_hint=1)
    rows = table.lookup([str(k) for k in range(100)], now=0.0)
    assert rows.tolist() == list(range(100))
    assert table.evict(1e12).size == 0


def test_snapshot_is_json_and_restore_continues_like_uninterrupted():
    rng = np.random.default_rng(0)
    batches = [[f"u{k}" for k in rng.integers(0, 40, 20)] for _ in range(20)]
    a = IdTable(ttl_seconds=3.0)
    b = IdTable(ttl_seconds=3.0)
    out_a, out_b = [], []
    for t, ids in enumerate(batches):
        if t == 10:
            state = b.snapshot()
            state = {**json.loads(json.dumps({**state, "last_seen": None})),
                     "last_seen": state["last_seen"]}
            b = IdTable.restore(state)
        for table, out in ((a, out_a), (b, out_b)):
            out.append(table.evict(float(t)).tolist())
            out.append(table.lookup(ids, float(t)).tolist())
            out.append(table.last_new_rows.tolist())
    assert out_a == out_b


def test_bad_configuration():
    with pytest.raises(ValueError, match="ttl_seconds"):
        IdTable(ttl_seconds=0.0)
    with pytest.raises(ValueError, match="3 ids but 1"):
        IdTable.restore({"capacity_hint": 4, "ttl_seconds": None, "ids": ["a", "b", "c"],
                         "last_seen": np.zeros(1)})
