from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stream.files import FileSource
from stream.schema import Event, Rejected, decode
from stream.source import Source
from stream.synthetic import CORRUPTIONS, SyntheticSource, SyntheticStream, _corrupt, write


def test_same_seed_same_stream_and_different_seed_differs() -> None:
    a = SyntheticStream(n_events=3000, invalid_rate=0.1, seed=5)
    b = SyntheticStream(n_events=3000, invalid_rate=0.1, seed=5)
    assert list(a) == list(b) == list(a)
    assert list(a.raw()) == list(b.raw())
    other = list(SyntheticStream(n_events=3000, seed=6))
    assert [e.value for e in other] != [e.value for e in a]
    assert other[0].event_id == "syn-6-0"


def test_events_are_valid_ordered_and_in_range() -> None:
    s = SyntheticStream(n_users=50, n_items=80, n_events=20_000, drift_at=(7000, 14000))
    events = list(s)
    assert len(events) == len(s) == 20_000
    assert [e.event_id for e in events[:2]] == ["syn-42-0", "syn-42-1"]
    values = np.array([e.value for e in events])
    assert values.min() >= 1.0 and values.max() <= 5.0 and values.std() > 0.5
    ts = np.array([e.ts for e in events])
    assert ts[0] >= s.start_ts and np.all(np.diff(ts) > 0)
    assert ts[-1] - ts[0] == pytest.approx(20_000 / s.events_per_second, rel=0.01)
    assert {e.type for e in events} == {"rating"}
    assert all(decode(raw) == e for raw, e in zip(s.raw(), events, strict=True))
    users = Counter(e.user_id for e in events)
    assert len(users) <= 50 and users.most_common(1)[0][1] > 5 * 20_000 / 50  # Zipf-like skew


def test_drift_points_and_regimes() -> None:
    s = SyntheticStream(n_events=100, drift_at=(10, 50, 100, 500))
    assert s.drift_points == (10, 50)
    assert [s.regime_of(i) for i in (0, 9, 10, 49, 50, 99)] == [0, 0, 1, 1, 2, 2]
    for bad in [(0,), (10, 10), (50, 10), (-1,)]:
        with pytest.raises(ValueError, match="drift_at"):
            SyntheticStream(drift_at=bad)
    with pytest.raises(ValueError):
        SyntheticStream(invalid_rate=1.5)


def item_means(events: list[Event], n_items: int) -> np.ndarray:
    sums, counts = np.zeros(n_items), np.zeros(n_items)
    for e in events:
        sums[int(e.item_id[1:])] += e.value
        counts[int(e.item_id[1:])] += 1
    return sums / np.maximum(counts, 1)


def test_drift_changes_behaviour_far_more_than_sampling() -> None:
    s = SyntheticStream(n_users=100, n_items=30, n_events=40_000, drift_at=(20_000,), seed=3)
    events = list(s)
    quarters = [item_means(events[q * 10_000:(q + 1) * 10_000], 30) for q in range(4)]
    within = np.abs(quarters[0] - quarters[1]).mean()
    across = np.abs(quarters[1] - quarters[2]).mean()
    assert across > 3 * within


def test_invalid_records_are_all_rejected_with_the_planned_kind() -> None:
    s = SyntheticStream(n_events=20_000, invalid_rate=0.1, seed=11)
    plan = s.corruption_plan()
    assert 0.09 < len(plan) / len(s) < 0.11
    assert set(plan.values()) == set(CORRUPTIONS)
    for i, (raw, event) in enumerate(zip(s.raw(), s, strict=True)):
        result = decode(raw)
        if i in plan:
            assert isinstance(result, Rejected), (plan[i], raw[:120])
            assert result.kind == CORRUPTIONS[plan[i]], (plan[i], result.reason)
        else:
            assert result == event


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_each_corruption_is_rejected(kind: str) -> None:
    event = Event("e", "u", "i", "rating", 4.0, 1.0, {"k": 1.0})
    result = decode(_corrupt(event, kind))
    assert isinstance(result, Rejected) and result.kind == CORRUPTIONS[kind]


def test_no_invalid_records_by_default() -> None:
    s = SyntheticStream(n_events=2000)
    assert s.corruption_plan() == {}
    assert not any(isinstance(decode(raw), Rejected) for raw in s.raw())


def test_hundred_thousand_events_are_fast() -> None:
    s = SyntheticStream(n_users=5000, n_items=3000, n_events=100_000, drift_at=(50_000,))
    start = time.perf_counter()
    n = sum(1 for _ in s)
    assert n == 100_000 and time.perf_counter() - start < 5.0


def test_synthetic_source_batches_and_resumes() -> None:
    s = SyntheticStream(n_events=25, invalid_rate=0.2, seed=2)
    src = SyntheticSource(s, batch_size=10)
    assert isinstance(src, Source)
    batches = []
    while not src.exhausted:
        batches.append(src.poll())
    assert [len(b) for b in batches] == [10, 10, 5]
    records = [r for b in batches for r in b]
    assert [r.value for r in records] == list(s.raw())
    assert {(r.topic, r.partition) for r in records} == {("synthetic", 0)}
    resumed = SyntheticSource(s, start_offset=12)
    assert resumed.poll() == records[12:] and resumed.exhausted and resumed.position == 25
    src.commit({("synthetic", 0): 25})
    assert src.committed == {("synthetic", 0): 25}


@pytest.mark.parametrize(("name", "format"), [("s.csv", "csv"), ("s.data.gz", "movielens"),
                                              ("s.jsonl", "jsonl")])
def test_write_round_trips_through_file_source(tmp_path: Path, name: str, format: str) -> None:
    s = SyntheticStream(n_events=500, seed=9)
    path = tmp_path / name
    assert write(s, path, format) == 500  # type: ignore[arg-type]
    src = FileSource(path, format=format)  # type: ignore[arg-type]
    read = []
    while not src.exhausted:
        read.extend(decode(r.value) for r in src.poll())
    expected = list(s)
    assert [(e.user_id, e.item_id, e.value, e.ts) for e in read] == [
        (e.user_id, e.item_id, e.value, e.ts) for e in expected]
    if format == "jsonl":
        assert read == expected


def test_write_raw_jsonl_keeps_invalid_records(tmp_path: Path) -> None:
    s = SyntheticStream(n_events=1000, invalid_rate=0.1, seed=4)
    path = tmp_path / "raw.jsonl"
    write(s, path, "jsonl", include_invalid=True)
    src = FileSource(path, format="jsonl")
    rejected = 0
    while not src.exhausted:
        rejected += sum(isinstance(decode(r.value), Rejected) for r in src.poll())
    assert rejected == len(s.corruption_plan())
    with pytest.raises(ValueError, match="include_invalid"):
        write(s, tmp_path / "x.csv", "csv", include_invalid=True)


def test_population_drift_changes_who_is_active_not_their_tastes() -> None:
    s = SyntheticStream(n_users=90, n_items=50, n_events=3000, drift_at=(1000, 2000), seed=5,
                        drift_kind="population")
    users_by_regime: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    for i, ev in enumerate(s):
        users_by_regime[s.regime_of(i)].add(int(ev.user_id[1:]))
    assert max(users_by_regime[0]) < 30 and min(users_by_regime[1]) >= 30
    assert max(users_by_regime[1]) < 60 and min(users_by_regime[2]) >= 60
    with pytest.raises(ValueError, match="drift_kind"):
        SyntheticStream(drift_kind="sideways")  # type: ignore[arg-type]
