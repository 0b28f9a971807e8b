from __future__ import annotations

import gzip
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest

from stream.schema import Event, Rejected, decode
from stream.synthetic import CORRUPTIONS, write
from stream.synthetic_implicit import ImplicitStream

N = 30_000


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return list(ImplicitStream(n_events=N, drift_at=(N // 2,), seed=5))


ORDER = {"view": 0, "click": 1, "cart": 2, "purchase": 3}


def visits(events: list[Event]) -> list[list[Event]]:
    """Split into visits: a new one starts at a view, a new (user, item, session), or when
    the funnel goes back (a click after a click)."""
    out: list[list[Event]] = []
    for e in events:
        prev = out[-1][-1] if out else None
        same = prev is not None and (prev.user_id, prev.item_id, prev.context) == \
            (e.user_id, e.item_id, e.context)
        if e.type == "view" or not same or ORDER[e.type] <= ORDER[prev.type]:  # type: ignore[union-attr]
            out.append([e])
        else:
            out[-1].append(e)
    return out


def test_determinism_and_seeds(events: list[Event]) -> None:
    again = list(ImplicitStream(n_events=N, drift_at=(N // 2,), seed=5))
    assert again == events
    other = list(ImplicitStream(n_events=N, drift_at=(N // 2,), seed=6))
    assert other != events and len(other) == N
    assert [e.event_id for e in events] == [f"imp-5-{i}" for i in range(N)]
    assert all(a.ts <= b.ts for a, b in pairwise(events))


def test_schema_valid_and_round_trips(events: list[Event]) -> None:
    stream = ImplicitStream(n_events=2000, seed=5)
    for event, raw in zip(stream, stream.raw(), strict=True):
        assert decode(raw) == event and event.value == 1.0
        assert set(event.context or {}) == {"session"}


def test_invalid_rate_breaks_the_planned_records() -> None:
    stream = ImplicitStream(n_events=5000, invalid_rate=0.1, seed=2)
    plan = stream.corruption_plan()
    assert 400 < len(plan) < 600
    for i, raw in enumerate(stream.raw()):
        got = decode(raw)
        if i in plan:
            assert isinstance(got, Rejected) and got.kind == CORRUPTIONS[plan[i]]
        else:
            assert isinstance(got, Event)


def test_funnel_shares_and_order(events: list[Event]) -> None:
    vs = visits(events)
    counts = Counter(e.type for e in events)
    n = len(vs)
    assert counts["view"] / n == pytest.approx(0.9, abs=0.02)  # 10% direct clicks
    assert counts["click"] / n == pytest.approx(0.1 + 0.9 * 0.35, abs=0.02)
    assert counts["cart"] / counts["click"] == pytest.approx(0.3, abs=0.03)
    assert counts["purchase"] / counts["cart"] == pytest.approx(0.5, abs=0.05)
    for v in vs[:-1]:  # the last visit may be cut at n_events
        kinds = [e.type for e in v]
        assert len({(e.user_id, e.item_id) for e in v}) == 1
        assert [ORDER[k] for k in kinds] == sorted(ORDER[k] for k in kinds)
        assert "click" in kinds or kinds == ["view"]
        assert ("cart" not in kinds or "click" in kinds) and \
            ("purchase" not in kinds or "cart" in kinds)


def test_sessions_are_runs_of_one_user_with_related_items(events: list[Event]) -> None:
    stream = ImplicitStream(n_events=N, drift_at=(N // 2,), seed=5)
    sessions: dict[str, list[list[Event]]] = {}
    for v in visits(events):
        sessions.setdefault(str(v[0].context["session"]), []).append(v)  # type: ignore[index]
    for vs in sessions.values():
        assert len({v[0].user_id for v in vs}) == 1
    lengths = [len(vs) for vs in sessions.values()]
    assert np.mean(lengths) == pytest.approx(6.0, rel=0.15) and max(lengths) > 10
    # a session is contiguous in the stream
    order = [str(e.context["session"]) for e in events]  # type: ignore[index]
    assert len(sessions) == sum(1 for a, b in pairwise(order) if a != b) + 1
    followed = total = 0
    for vs in sessions.values():
        for a, b in pairwise(vs):
            total += 1
            nxt = stream.successors(int(a[0].item_id[1:]))
            followed += int(b[0].item_id[1:]) in nxt.tolist()
    assert followed / total > 0.6  # p_follow=0.6, plus fresh draws that happen to follow
    first = Counter()
    for vs in sessions.values():
        for a, b in pairwise(vs):
            if int(b[0].item_id[1:]) == stream.successors(int(a[0].item_id[1:]))[0]:
                first[a[0].item_id] += 1
    assert sum(first.values()) / total == pytest.approx(0.6 * 0.6, abs=0.06)


def top_items(events: list[Event], n: int = 30) -> set[str]:
    return {item for item, _ in Counter(e.item_id for e in events).most_common(n)}


def test_drift_changes_the_popular_items(events: list[Event]) -> None:
    half, w = N // 2, 4000
    calm = list(ImplicitStream(n_events=N, drift_at=(), seed=5))
    overlap_drift = len(top_items(events[half - w:half]) & top_items(events[half:half + w]))
    overlap_calm = len(top_items(calm[half - w:half]) & top_items(calm[half:half + w]))
    assert overlap_drift < overlap_calm / 2
    assert ImplicitStream(n_events=N, drift_at=(half,)).drift_points == (half,)
    assert [ImplicitStream(n_events=10, drift_at=(5, 20)).regime_of(i) for i in (4, 5)] == [0, 1]


def test_popularity_rises_and_fades() -> None:
    calm = list(ImplicitStream(n_events=N, drift_at=(), seed=5))
    early, late = top_items(calm[:5000]), top_items(calm[-5000:])
    assert len(early & late) < 15  # trends moved half of the top 30 without any drift
    stream = ImplicitStream(n_events=N, drift_at=(), seed=5)
    p = np.stack([stream.trending(i) for i in (0, N // 2, N - 1)])
    assert np.allclose(p.sum(axis=1), 1.0) and np.abs(p[0] - p[2]).sum() > 0.3


def test_write_jsonl_for_evaluate(tmp_path) -> None:
    path = tmp_path / "clicks.jsonl.gz"
    stream = ImplicitStream(n_events=300, seed=1)
    assert write(stream, path) == 300
    with gzip.open(path) as fh:
        lines = fh.read().splitlines()
    assert [decode(line) for line in lines] == list(stream)


def test_configuration_is_checked() -> None:
    for bad in [{"n_items": 2}, {"p_click": 1.5}, {"drift_at": (5, 3)},
                {"session_length": 0.5}, {"events_per_second": 0}]:
        with pytest.raises(ValueError):
            ImplicitStream(**bad)  # type: ignore[arg-type]
    assert list(ImplicitStream(n_events=0)) == []
    tiny = list(ImplicitStream(n_users=1, n_items=4, n_events=50, seed=1))
    assert len(tiny) == 50 and {e.user_id for e in tiny} == {"u0"}


def test_a_next_item_model_beats_decayed_popularity(events: list[Event]) -> None:
    """The session structure is learnable: prequential HR@10 (rank, score, then learn) of
    a last-item transition counter against decayed popularity (x0.999 per event)."""
    rows: dict[str, int] = {}
    pop = np.zeros(0)
    trans: dict[int, Counter[int]] = {}
    last: dict[str, int] = {}
    seen: dict[str, set[int]] = {}
    hits = {"pop": 0, "next": 0}
    n = 0
    for e in events[:15_000]:
        row = rows.get(e.item_id)
        user_seen = seen.setdefault(e.user_id, set())
        if row is not None and e.user_id in last and row not in user_seen and len(rows) > 10:
            n += 1
            banned = np.fromiter(user_seen, dtype=np.int64)
            p = pop.copy()
            p[banned] = -np.inf
            hits["pop"] += row in np.argpartition(-p, 9)[:10]
            t = 1e-9 * pop  # ties broken by popularity
            for j, c in trans.get(last[e.user_id], Counter()).items():
                t[j] += c
            t[banned] = -np.inf
            hits["next"] += row in np.argpartition(-t, 9)[:10]
        if row is None:
            row = rows[e.item_id] = len(rows)
            pop = np.append(pop, 0.0)
        pop *= 0.999
        pop[row] += 1.0
        prev = last.get(e.user_id)
        if prev is not None and prev != row:
            trans.setdefault(prev, Counter())[row] += 1
        last[e.user_id] = row
        user_seen.add(row)
    assert n > 3000
    assert hits["next"] > 2.5 * hits["pop"] > 0
