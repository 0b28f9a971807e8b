from __future__ import annotations

import json
import pickle
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.impressions import ImpressionJoin, Sample
from stream.impression import Impression
from stream.schema import Event

Item = Impression | Event


def click(user: str, item: str, ts: float, kind: str = "click", n: int = 0) -> Event:
    return Event(f"e-{user}-{item}-{ts}-{n}", user, item, kind, 1.0, ts)  # type: ignore[arg-type]


def feed(join: ImpressionJoin, records: list[Item]) -> list[Sample]:
    out: list[Sample] = []
    for rec in records:
        out.extend(join.add(rec) if isinstance(rec, Impression) else join.observe(rec))
    return out


def traffic(seed: int, n: int = 400, users: int = 8, items: int = 30) -> list[Item]:
    """Impressions of 5 items and clicks on some of them (and organic ones), ts-ordered
    with a little jitter; some records delivered twice."""
    rng = random.Random(seed)
    out: list[tuple[float, int, Item]] = []
    for k in range(n):
        t = k * 10.0
        user = f"u{rng.randrange(users)}"
        shown = rng.sample([f"i{j}" for j in range(items)], 5)
        imp = Impression(f"imp-{seed}-{k}", user, tuple(shown), t)
        out.append((t, len(out), imp))
        for item in shown:
            if rng.random() < 0.2:
                dt = rng.uniform(0, 120)
                out.append((t + dt, len(out), click(user, item, t + dt, n=k)))
                if rng.random() < 0.3:  # a cart on the same shown slot
                    out.append((t + dt + 1, len(out), click(user, item, t + dt + 1, "cart", k)))
        if rng.random() < 0.1:
            out.append((t + 1, len(out), click(user, "organic", t + 1, n=k)))
        if rng.random() < 0.05:
            out.append((t + 2, len(out), click(user, shown[0], t + 2, "view", k)))
        if rng.random() < 0.05:
            out.append((t + 3, len(out), imp))  # delivered twice
    out.sort(key=lambda x: (x[0] + rng.uniform(-3, 3), x[1]))
    return [rec for _, _, rec in out]


def test_join_within_the_window_only() -> None:
    join = ImpressionJoin(window=60.0)
    join.add(Impression("a", "u", ("x", "y"), 100.0))
    assert join.observe(click("u", "x", 90.0)) == []  # before it was shown
    late = join.observe(click("u", "x", 170.0))  # 70 s after: too late, and it expires "a"
    assert [(s.item, s.label) for s in late] == [("x", 0), ("y", 0)]
    assert join.counters["unmatched"] == 2 and join.counters["joined"] == 0


def test_join_picks_the_latest_impression_and_a_slot_joins_once() -> None:
    join = ImpressionJoin(window=100.0)
    join.add(Impression("old", "u", ("x", "y"), 0.0))
    join.add(Impression("new", "u", ("x", "z"), 10.0))
    join.add(Impression("other", "v", ("x",), 11.0))
    got = join.observe(click("u", "x", 20.0))
    assert got == [Sample("u", "x", 1, 20.0, "new", "click")]
    assert join.observe(click("u", "x", 21.0, "cart")) == []  # same slot: a repeat
    assert join.observe(click("u", "x", 20.0)) == []  # the same event again
    assert join.observe(click("u", "y", 22.0, "purchase"))[0].impression_id == "old"
    assert join.counters["joined"] == 2 and join.counters["repeat"] == 2
    negatives = join.flush()
    assert sorted((s.impression_id, s.item) for s in negatives) == [
        ("new", "z"), ("old", "x"), ("other", "x")]
    assert all(s.label == 0 and s.event_type is None for s in negatives)
    assert join.counters["expired"] == 3 and join.counters["negative"] == 3


def test_expiry_emits_the_unclicked_items_as_negatives() -> None:
    join = ImpressionJoin(window=30.0)
    join.add(Impression("a", "u", ("x", "y", "z"), 0.0))
    join.observe(click("u", "y", 5.0))
    assert join.observe(click("w", "q", 30.0, "view")) == []  # exactly at the window: live
    negatives = join.observe(click("w", "q", 30.5, "view"))
    assert [(s.item, s.label, s.ts) for s in negatives] == [("x", 0, 0.0), ("z", 0, 0.0)]
    assert len(join) == 0 and join.observe(click("u", "x", 31.0)) == []
    assert join.counters["unmatched"] == 1


def test_only_events_expire_impressions_and_duplicates_are_ignored() -> None:
    join = ImpressionJoin(window=10.0)
    join.add(Impression("a", "u", ("x",), 0.0))
    assert join.add(Impression("a", "u", ("x",), 0.0)) == []
    # an impression read ahead of the events (another topic) does not expire "a": a click
    # on it may still come
    assert join.add(Impression("b", "u", ("y",), 11.0)) == []
    assert join.observe(click("u", "x", 9.0))[0].impression_id == "a"
    assert [s.item for s in join.observe(click("v", "q", 12.0, "view"))] == []  # x joined
    assert join.add(Impression("a", "u", ("x",), 0.0)) == []  # finished ids are remembered
    assert join.counters["duplicate"] == 2 and join.counters["impressions"] == 2


def test_a_click_read_before_its_impression_is_held_while_impressions_lag() -> None:
    join = ImpressionJoin(window=60.0)
    join.lagging = True  # the impression topic is behind (the feed says so from the lag)
    assert join.observe(click("u", "x", 110.0)) == [] and join.held == 1
    assert join.observe(click("w", "q", 500.0, "view")) == [] and join.held == 2  # in order
    assert join.add(Impression("a", "u", ("x", "y"), 100.0)) == []  # 100 < 110: still held
    got = join.add(Impression("b", "v", ("z",), 120.0))  # impressions passed the click's time
    assert got == [Sample("u", "x", 1, 110.0, "a", "click")] and join.held == 1
    released = join.release()  # caught up: the view goes, and expires both impressions
    assert sorted((s.item, s.label) for s in released) == [("y", 0), ("z", 0)]
    assert join.counters["joined"] == 1 and join.counters["unmatched"] == 0


def _time_ordered(seed: int) -> list[Item]:
    records = traffic(seed)
    return sorted(records, key=lambda r: (r.ts, 0 if isinstance(r, Impression) else 1))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_events_read_ahead_of_impressions_join_as_in_time_order(seed: int) -> None:
    """A backlog read topic by topic (all events, then all impressions) gives the same
    samples as the streams merged in time order, once the join knows impressions lag."""
    records = _time_ordered(seed)
    in_order = ImpressionJoin(window=100.0)
    expected = feed(in_order, records) + in_order.flush()
    ahead = ImpressionJoin(window=100.0)
    ahead.lagging = True
    got = feed(ahead, [r for r in records if not isinstance(r, Impression)])
    got += feed(ahead, [r for r in records if isinstance(r, Impression)])
    ahead.lagging = False
    got += ahead.release() + ahead.flush()
    assert sorted(got) == sorted(expected) and ahead.counters == in_order.counters


def test_held_events_ride_in_the_snapshot() -> None:
    records = _time_ordered(3)
    events = [r for r in records if not isinstance(r, Impression)]
    imps = [r for r in records if isinstance(r, Impression)]
    whole = ImpressionJoin(window=100.0)
    whole.lagging = True
    expected = feed(whole, events + imps) + whole.release() + whole.flush()
    first = ImpressionJoin(window=100.0)
    first.lagging = True
    got = feed(first, events + imps[:40])
    state = json.loads(json.dumps(first.snapshot()))
    assert state["held"] and first.held == len(state["held"])
    resumed = ImpressionJoin(window=100.0, state=state)
    resumed.lagging = True
    got += feed(resumed, imps[40:]) + resumed.release() + resumed.flush()
    assert got == expected and resumed.counters == whole.counters


def test_held_events_are_bounded() -> None:
    join = ImpressionJoin(window=10.0, max_impressions=5)
    join.lagging = True
    for k in range(20):
        join.observe(click("u", f"i{k}", float(k)))
        assert join.held <= 5
    assert join.counters["unmatched"] == 15  # the oldest went ahead, unmatched


def test_feed_orders_a_batch_and_releases_once_the_topic_caught_up() -> None:
    from consumers.impressions import ImpressionFeed
    from stream.impression import encode_impression
    from stream.source import Record

    got: list[Sample] = []
    feed_ = ImpressionFeed("imps", ImpressionJoin(window=60.0), got.append, track_lag=True)
    assert feed_.join.lagging  # nothing reported yet: assume behind
    batch = [Record(b"{}", "events", 0, 0), Record(b"{}", "imps", 0, 0),
             Record(b"{}", "events", 0, 1), Record(b"{}", "imps", 1, 0)]
    ordered = feed_.order(batch)
    assert [(r.topic, r.partition, r.offset) for r in ordered] == [
        ("imps", 0, 0), ("imps", 1, 0), ("events", 0, 0), ("events", 0, 1)]
    feed_.lag(0, 3)
    feed_.lag(1, 0)
    feed_.event(click("u", "x", 110.0))
    feed_.event(click("w", "q", 500.0, "view"))
    feed_.end_batch()
    assert feed_.join.held == 2  # partition 0 is still behind
    feed_.record(encode_impression(Impression("a", "u", ("x", "y"), 100.0)))
    feed_.lag(0, 0)
    feed_.end_batch()
    assert feed_.join.held == 0 and [(s.item, s.label) for s in got] == [("y", 0)]
    assert feed_.counters["joined"] == 1
    plain = ImpressionFeed("imps", ImpressionJoin(window=60.0), got.append)
    assert not plain.join.lagging  # without lag reports (a list source) nothing is held


def test_bounded_memory_evicts_the_oldest_without_negatives() -> None:
    join = ImpressionJoin(window=1e9, max_impressions=50)
    for k in range(1000):
        join.add(Impression(f"i{k}", f"u{k % 7}", (f"a{k}", f"b{k}"), float(k)))
        assert len(join) <= 50 and len(join._index) <= 100 and len(join._done) <= 50
    assert join.counters["evicted"] == 950 and join.counters["negative"] == 0
    assert len(json.dumps(join.snapshot())) < 20_000


def test_every_shown_slot_ends_joined_or_negative_and_never_twice() -> None:
    records = traffic(1, n=600)
    join = ImpressionJoin(window=200.0)
    samples = feed(join, records) + join.flush()
    slots = Counter((s.impression_id, s.item) for s in samples)
    assert max(slots.values()) == 1
    imps = {r.impression_id: r for r in records if isinstance(r, Impression)}
    assert set(slots) == {(iid, item) for iid, imp in imps.items() for item in imp.items}
    c = join.counters
    assert c["joined"] == sum(s.label for s in samples) > 100
    assert c["negative"] == len(samples) - c["joined"]
    assert c["impressions"] == c["expired"] == len(imps) and c["duplicate"] > 0
    assert c["unmatched"] > 0 and c["repeat"] > 0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.floats(0.0, 1.0),
       window=st.sampled_from([30.0, 200.0]), cap=st.sampled_from([5, 1000]))
def test_snapshot_restore_continue_equals_uninterrupted(seed: int, cut: float, window: float,
                                                        cap: int) -> None:
    records = traffic(seed, n=80)
    whole = ImpressionJoin(window=window, max_impressions=cap)
    expected = feed(whole, records) + whole.flush()
    k = int(cut * len(records))
    first = ImpressionJoin(window=window, max_impressions=cap)
    got = feed(first, records[:k])
    state = json.loads(json.dumps(first.snapshot()))  # as stored: JSON
    resumed = ImpressionJoin(window=window, max_impressions=cap, state=state)
    got += feed(resumed, records[k:]) + resumed.flush()
    assert got == expected and resumed.counters == whole.counters


def test_pickled_join_continues_like_the_original() -> None:
    records = traffic(3, n=100)
    a = ImpressionJoin(window=100.0)
    feed(a, records[:150])
    b = pickle.loads(pickle.dumps(a))
    assert feed(a, records[150:]) + a.flush() == feed(b, records[150:]) + b.flush()
    assert a.counters == b.counters


def test_configuration_is_checked() -> None:
    for bad in [{"window": 0}, {"max_impressions": 0}, {"skew": -1}]:
        with pytest.raises(ValueError):
            ImpressionJoin(**bad)  # type: ignore[arg-type]


def test_skew_lets_a_click_precede_its_impression_a_little() -> None:
    join = ImpressionJoin(window=60.0, skew=2.0)
    join.add(Impression("a", "u", ("x",), 100.0))
    assert join.observe(click("u", "x", 98.5))[0].impression_id == "a"


def test_feed_pseudonymises_impressions_as_the_learner_does_its_events() -> None:
    """With pseudonyms on, the learner's events carry pseudonyms; impressions logged with the
    raw id (or already pseudonymised by the logger) join them all the same."""
    from consumers.impressions import ImpressionFeed
    from stream.impression import encode_impression
    from stream.pseudonym import Pseudonymizer

    p = Pseudonymizer(b"0123456789abcdef-secret", key_id="k1")
    got: list = []
    feed = ImpressionFeed("impressions", ImpressionJoin(window=60.0), got.append,
                          pseudonymizer=p)
    feed.record(encode_impression(Impression("raw", "alice", ("a", "b"), 100.0)))
    feed.record(encode_impression(Impression("pre", p("bob"), ("a", "c"), 100.0)))
    for user in ("alice", "bob"):  # the worker pseudonymises events before the feed sees them
        feed.event(p.apply(click(user, "a", 110.0)))
    feed.event(click("carol", "z", 500.0))  # moves the watermark: the rest expires
    assert feed.counters["joined"] == 2
    assert sorted((s.user, s.item) for s in got) == sorted([(p("alice"), "b"), (p("bob"), "c")])
    assert "alice" not in json.dumps(feed.snapshot())
