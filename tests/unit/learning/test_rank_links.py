"""Flat link tables and trackers (rank_links.py, rank_top.py): kernels = numpy, old checkpoints.

The kernel tests need numba (they fail without it, by design: the compiled path is the one
the command runs).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning import rank_links, rank_top
from learning.rank_links import LinkTable
from learning.rank_sequence import CoOccurrence
from learning.rank_top import TopTracker, TopTrackers
from learning.rank_transitions import TimedTransitions
from tests.unit.learning.make_links_fixture import events

FIXTURE = Path(__file__).parent / "data" / "rank_links_v5.pkl"


def _state(table: LinkTable) -> dict[int, tuple[list[int], list[float], float]]:
    """Every row's keys and weights in slot order, and its total."""
    return {a: (table.slots(a)[0].tolist(), table.slots(a)[1].tolist(),
                float(table.total[a])) for a in range(len(table.idx)) if table.idx[a, 2]}


def test_numba_is_installed() -> None:
    assert rank_links.ENABLED, "numba is required for the compiled link kernels"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 40), st.floats(0.1, 3.0)),
                min_size=1, max_size=400),
       st.booleans(), st.integers(1, 6))
def test_kernels_equal_numpy_bit_for_bit(stream: list[tuple[int, int, float]],
                                         symmetric: bool, max_neighbours: int) -> None:
    compiled, reference = LinkTable(max_neighbours), LinkTable(max_neighbours)
    recent: dict[int, list[int]] = {}
    for user, item, w in stream:
        hist = np.array(recent.get(user, [])[-4:], dtype=np.int64)
        factors = np.linspace(0.5, 1.0, len(hist))
        compiled.reserve(41, 0)
        compiled.learn(hist, item, w, 0.7, factors, 0.6, symmetric=symmetric)
        reference.reserve(item + 1 if not len(hist) else max(item, hist.max()) + 1,
                          2 * len(hist) * reference._max_cap)
        reference.learn_numpy(hist, item, w, 0.7, factors, 0.6, symmetric=symmetric)
        recent.setdefault(user, []).append(item)
        assert _state(compiled) == _state(reference)
        ck, cv = compiled.terms(hist, 0.7)
        rk, rv = reference.terms_numpy(hist, 0.7)
        assert ck.tolist() == rk.tolist() and cv.tolist() == rv.tolist()
    assert all(n <= 2 * max_neighbours for n in compiled.idx[:, 2].tolist())


def test_pickle_compacts_and_continues_equal() -> None:
    stream = events(1500)
    a, b = TimedTransitions(2, time_scale=600.0), CoOccurrence(5)
    for i, e in enumerate(stream):
        for m in (a, b):
            m.learn_one(e.user_id, int(e.item_id[1:]), 1.0, e.ts)
        if i == 700:
            a2, b2 = pickle.loads(pickle.dumps(a)), pickle.loads(pickle.dumps(b))
            assert int(a2._table.used[0]) == int(a2._table.idx[:, 2].sum())
        elif i > 700:
            for m in (a2, b2):
                m.learn_one(e.user_id, int(e.item_id[1:]), 1.0, e.ts)
    for m, m2 in ((a, a2), (b, b2)):
        assert _state(m._table) == _state(m2._table)
        for user in ("u1", "u2", "u7"):
            assert m.score_items(user).tolist() == m2.score_items(user).tolist()


def test_old_checkpoints_load_and_continue_as_the_old_code_did() -> None:
    """Round-5 pickles (links as a dict of ``_Row``) convert and learn on to its figures."""
    fixture = pickle.loads(FIXTURE.read_bytes())
    stream = events(1200)
    for model in ("rerank", "blend", "co-occurrence"):
        old = fixture[model]
        learner = pickle.loads(old["snapshot"])
        losses = [learner.learn_one(event) for event in stream[600:]]
        assert np.array_equal(losses, old["losses"], equal_nan=True), model
        for user, scores in old["scores"].items():
            assert learner.score_items(user).tolist() == scores.tolist(), (model, user)
        assert learner.score() == old["score"], model


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.floats(0.5, 2.0)), min_size=1, max_size=300),
       st.integers(1, 6))
def test_trackers_kernel_equals_top_tracker(stream: list[tuple[int, float]], m: int) -> None:
    """One kernel call per event keeps the same rows, best and weakest as five TopTrackers."""
    counts, ref_counts = np.zeros((31, 3)), np.zeros((31, 3))
    tops, reference = TopTrackers(m, 3), [TopTracker(m) for _ in range(3)]
    scale = np.array([1.0, 1.5, 2.0])
    for item, w in stream:
        scale *= 1.01
        changed = tops.count(counts, scale, item, w)
        ref_counts[item] += w * scale
        ref_changed = [t.update(ref_counts[:, j], item) for j, t in enumerate(reference)]
        assert changed == any(ref_changed)
        assert counts.tolist() == ref_counts.tolist()
        for j, t in enumerate(reference):
            assert tops.column(j).rows().tolist() == t.rows().tolist()
            assert tops.column(j).best == t.best and tops.meta[j, 2] == t._weakest


def test_trackers_numpy_path_equals_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    runs = []
    for enabled in (True, False):
        monkeypatch.setattr(rank_top, "ENABLED", enabled)
        counts, tops = np.zeros((50, 2)), TopTrackers(4, 2)
        for item in rng.integers(0, 50, 400).tolist():
            tops.count(counts, np.array([1.0, 2.0]), item, 1.0)
        runs.append((counts.tolist(), tops.rows.tolist(), tops.meta.tolist(),
                     tops.member[:50].tolist()))
        rng = np.random.default_rng(3)
    assert runs[0] == runs[1]
