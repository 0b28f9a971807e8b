"""The worker state in deltas: gate windows diffed over the touched users, the dedup tail.

A version's gate state (``quality``) is applied to followers and resumes as a diff against
the previous version's; with :meth:`stream.quality.QualityGates.take_touched` the publisher
looks at the users the events touched (O(events)) instead of every user tracked (O(users),
a third of a publish's CPU at 1M users). These tests hold it to the full diff's result.
"""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.checkpoint import Checkpoint
from consumers.publisher import RegistryPublisher
from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from model_store import Registry
from model_store.delta import quality_diff
from model_store.signing import Signer
from stream.quality import QualityGates, UserRate
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource
from tests.unit.consumers.test_forked_bases import LaterWriter

KEY = b"0123456789abcdef-unit-gatediff-key"


def _apply(state, sets, drops):
    """What a follower does with a delta's gate diff (model_store.delta.apply_blob)."""
    out = {kind: [dict(w) for w in rules] for kind, rules in state.items()}
    for kind, rules in sets.items():
        have = out.setdefault(kind, [])
        for index, changed in enumerate(rules):
            while len(have) <= index:
                have.append({})
            have[index].update(changed)
    for kind, rules in drops.items():
        for index, gone in enumerate(rules):
            for user in gone:
                out[kind][index].pop(user, None)
    return out


def _gates(capacity):
    return QualityGates({"*": [UserRate(3, 5.0, capacity=capacity)],
                         "click": [UserRate(2, 3.0, capacity=capacity)]})


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 12), st.sampled_from(["rating", "click"]),
                                st.floats(0.0, 4.0), st.booleans()), min_size=1, max_size=120),
       capacity=st.integers(2, 20), restore_at=st.integers(-1, 120))
def test_the_touched_diff_rebuilds_every_state_as_the_full_diff_does(steps, capacity,
                                                                      restore_at):
    gates = _gates(capacity)
    gates.take_touched()  # a first publish: tracking starts
    served, ts = gates.snapshot(), 0.0
    for k, (user, kind, gap, publish) in enumerate(steps):
        if k == restore_at:  # an erasure restores the gates: any user may have changed
            gates.restore(gates.snapshot())
        ts += gap
        gates.check(Event(f"e{k}", f"u{user}", "i", kind, 1.0, ts), ts)
        if publish or k == len(steps) - 1:
            current, touched = gates.snapshot(), gates.take_touched()
            hinted = quality_diff(served, current, touched)
            assert _apply(served, *hinted) == current
            assert _apply(served, *quality_diff(served, current)) == current
            served = current


def test_a_missing_user_in_the_hint_would_be_missed():
    # the hint is trusted: this is why every path that changes windows must report them
    before = {"*": [{"a": (0.0, 1.0)}]}
    after = {"*": [{"a": (0.0, 2.0), "b": (1.0, 1.0)}]}
    assert quality_diff(before, after, {"*": [{"a": None}]}) == ({"*": [{"a": (0.0, 2.0)}]}, {})
    assert quality_diff(before, after, {"*": [None]})[0] == {"*": [after["*"][0]]}


def _stream(n=1500, users=400, seed=11):
    rng = random.Random(seed)
    out, ts = [], 1_700_000_000.0
    for k in range(n):
        ts += rng.choice((0.0, 0.5, 3.0))  # windows of 60 s close, users come back
        out.append(encode(Event(f"e{k}", f"u{rng.randrange(users)}", f"i{rng.randrange(50)}",
                                "rating", float(rng.randint(1, 5)), ts)))
    return out


@pytest.mark.parametrize("forked", [False, True])
def test_every_version_resumes_the_workers_gate_windows_with_compactions_and_a_sweep(forked):
    reg = Registry.from_url("memory://", signer=Signer(KEY))
    writer = LaterWriter(delay=2) if forked else None  # bases by a "child", deltas go on
    pub = RegistryPublisher(reg, "reco", compact_after=4, compact_share=100.0,
                            base_writer="fork" if forked else "inline", writer=writer)
    gates = QualityGates({"*": [UserRate(600, 60.0, capacity=250)]})  # sweeps past 250 users
    worker = LearnerWorker(ListSource(_stream(), batch_size=40), OnlineLearner("BiasedMF"),
                           ListDeadLetters(), publisher=pub, publish_every_events=70,
                           publish_every_seconds=1e9, quality=gates)
    checked = 0
    while batch := worker.source.poll(1.0):
        worker.process(batch)
        if worker._publish_due() and worker.publish() is not None:
            _, obj = reg.load_object("reco", "latest")  # base + deltas, as a resume loads it
            got = Checkpoint.of(obj).quality  # windows come back as lists from msgpack
            assert {k: [{u: tuple(w) for u, w in r.items()} for r in rules]
                    for k, rules in got.items()} == gates.snapshot()
            checked += 1
    formats = {v.format for v in reg.versions("reco")}
    assert checked >= 15 and formats == {"river-pickle", "river-delta"}
    assert (pub.forked_bases >= 2) if forked else (pub.bases >= 3)


def _tail_reference(previous, current):
    """dedup_tail as it was (array.index over the boxed ids): the behaviour to keep."""
    from array import array

    if len(current) < 8 or not previous:
        return current
    ring, first = array("Q"), array("Q")
    ring.frombytes(previous)
    first.frombytes(current[:8])
    try:
        start = ring.index(first[0]) * 8
    except ValueError:
        return current
    keep = len(previous) - start
    return current if current[:keep] != previous[start:] else current[keep:]


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.integers(0, 2**64 - 1), unique=True, max_size=60),
       cut=st.integers(0, 60), added=st.integers(0, 30), capacity=st.integers(1, 40),
       noise=st.lists(st.integers(0, 2**64 - 1), max_size=5))
def test_the_dedup_tail_search_equals_the_boxed_one(ids, cut, added, capacity, noise):
    from array import array

    from model_store.delta import dedup_tail

    previous = array("Q", ids[:cut][-capacity:]).tobytes()
    current = array("Q", ids[:cut + added][-capacity:]).tobytes()
    assert dedup_tail(previous, current) == _tail_reference(previous, current)
    other = array("Q", noise).tobytes() + current  # a window that does not continue it
    assert dedup_tail(previous, other) == _tail_reference(previous, other)
    # an id whose bytes straddle two ids of previous: only 8-byte-aligned matches count
    if len(previous) >= 16:
        odd = previous[4:12] + current
        assert dedup_tail(previous, odd) == _tail_reference(previous, odd)
