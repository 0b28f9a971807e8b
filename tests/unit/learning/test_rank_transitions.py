"""Time-faded transitions: the plain links when gaps are nil, faded or dropped otherwise."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.rank_sequence import CoOccurrence
from learning.rank_transitions import TimedTransitions

_EVENTS = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 15),
                             st.sampled_from([0.0, 1.0, 30.0, 4000.0, 1e6])),
                   min_size=1, max_size=120)


def _replay(model, events):
    t = 0.0
    for user, item, step in events:
        t += step
        model.learn_one(f"u{user}", item, ts=t)
    return model


@settings(max_examples=40, deadline=None)
@given(events=_EVENTS, symmetric=st.booleans())
def test_an_infinite_time_scale_gives_the_plain_links(events, symmetric):
    plain = _replay(CoOccurrence(3, symmetric=symmetric, decay=0.99, position_decay=0.5,
                                 max_neighbours=4), events)
    timed = _replay(TimedTransitions(3, time_scale=math.inf, symmetric=symmetric, decay=0.99,
                                     position_decay=0.5, max_neighbours=4), events)
    for user in {f"u{u}" for u, _, _ in events}:
        assert np.allclose(timed.score_items(user), plain.score_items(user))
    for item in range(16):
        got, want = timed.neighbours(item), plain.neighbours(item)
        assert got.keys() == want.keys()
        assert np.allclose([got[k] for k in want], list(want.values()))


def test_a_link_fades_with_the_gap_between_its_events():
    seq = TimedTransitions(1, time_scale=100.0, decay=1.0, min_factor=0.0)
    for user, item, ts in [("a", 0, 0.0), ("a", 1, 0.0), ("b", 0, 0.0), ("b", 2, 100.0)]:
        seq.learn_one(user, item, ts=ts)
    links = seq.neighbours(0)
    assert links[1] == pytest.approx(1.0)
    assert links[2] == pytest.approx(math.exp(-1.0))
    seq.learn_one("c", 0, ts=500.0)
    scores = seq.score_items("c")
    assert scores[1] == pytest.approx(1.0 / (1.0 + math.exp(-1.0)))
    assert scores[1] > scores[2] > 0.0


def test_links_weaker_than_min_factor_are_not_stored():
    seq = TimedTransitions(2, time_scale=10.0, min_factor=1e-3)
    seq.learn_one("a", 0, ts=0.0)
    seq.learn_one("a", 1, ts=1000.0)  # exp(-100): dropped
    assert seq.neighbours(0) == {}
    assert seq.score_items("a").tolist() == [0.0, 0.0]


@settings(max_examples=20, deadline=None)
@given(events=_EVENTS, cut=st.integers(0, 120))
def test_snapshot_restore_continue_equals_an_uninterrupted_run(events, cut):
    cut = min(cut, len(events))
    whole = _replay(TimedTransitions(3, time_scale=500.0), events)
    first = _replay(TimedTransitions(3, time_scale=500.0), events[:cut])
    t0 = sum(step for _, _, step in events[:cut])
    resumed = pickle.loads(pickle.dumps(first))
    t = t0
    for user, item, step in events[cut:]:
        t += step
        resumed.learn_one(f"u{user}", item, ts=t)
    for user in {f"u{u}" for u, _, _ in events}:
        assert resumed.score_items(user).tolist() == whole.score_items(user).tolist()


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="time_scale"):
        TimedTransitions(time_scale=0.0)
    with pytest.raises(ValueError, match="min_factor"):
        TimedTransitions(min_factor=1.0)


def test_a_user_erased_from_recent_leaves_no_times_behind():
    seq = TimedTransitions(2)
    seq.learn_one("secret-user", 0, ts=0.0)
    seq.learn_one("secret-user", 1, ts=1.0)
    seq._recent.pop("secret-user")  # what learning.erasure does for co-occurrence parts
    assert b"secret-user" not in pickle.dumps(seq)
    seq.learn_one("secret-user", 2, ts=2.0)  # comes back cold
    assert seq.recent("secret-user") == [2]
