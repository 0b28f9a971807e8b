from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.quality import QualityConfigError, QualityGates, UserRate
from stream.schema import Event

NOW = 1_700_000_000.0


def ev(value: float = 4.0, ts: float = NOW, user: str = "u1", etype: str = "rating",
       eid: str = "e") -> Event:
    return Event(eid, user, "i1", etype, value, ts)  # type: ignore[arg-type]


@pytest.mark.parametrize(("event", "kind"), [
    (ev(value=1e308), "value_range"),
    (ev(value=-1e9), "value_range"),
    (ev(ts=1e15), "ts_future"),
    (ev(ts=253_402_300_799.0), "ts_future"),  # 9999-12-31
    (ev(ts=-1.0), "ts_floor"),
])
def test_default_gates_refuse_poison_values_with_a_bounded_reason(event: Event, kind: str):
    reason = QualityGates.default().check(event, NOW)
    assert reason is not None and reason.split(":")[0] == kind


@given(st.floats(0.0, 10.0), st.floats(0.0, NOW + 3600))
def test_plausible_ratings_always_pass(value: float, ts: float):
    assert QualityGates.default().check(ev(value, ts), NOW) is None


def test_rules_are_per_event_type_with_a_default():
    gates = QualityGates.from_env_value('{"rating": {"value": [1, 5]}, "*": {"value": [0, 1]}}')
    assert gates.check(ev(6.0), NOW) is not None
    assert gates.check(ev(6.0, etype="click"), NOW) is not None
    assert gates.check(ev(1.0, etype="click"), NOW) is None
    assert QualityGates.from_env_value("off").check(ev(1e308), NOW) is None


def test_a_bot_burst_is_refused_and_the_next_window_starts_fresh():
    rate = UserRate(3, 10.0)
    got = [rate.check(ev(ts=NOW + k * 0.1, user="bot"), NOW) for k in range(5)]
    assert got[:3] == [None] * 3 and all(r and r.startswith("user_rate") for r in got[3:])
    assert rate.check(ev(ts=NOW + 11, user="bot"), NOW) is None
    assert rate.check(ev(ts=NOW, user="human"), NOW) is None


def test_user_rate_snapshot_restore_continues_like_an_uninterrupted_run():
    events = [ev(ts=NOW + k * 0.5, user=f"u{k % 3}") for k in range(60)]
    whole, first = UserRate(4, 5.0), UserRate(4, 5.0)
    expected = [whole.check(e, NOW) for e in events]
    got = [first.check(e, NOW) for e in events[:25]]
    second = UserRate(4, 5.0)
    second.restore(first.snapshot())
    got += [second.check(e, NOW) for e in events[25:]]
    assert got == expected


def test_user_rate_memory_is_bounded():
    rate = UserRate(2, 1.0, capacity=100)
    for k in range(1000):
        rate.check(ev(ts=NOW + k, user=f"u{k}"), NOW)
    assert len(rate.snapshot()) <= 100


@pytest.mark.parametrize(("raw", "named"), [
    ('{"rating": {"value": [5, 1]}}', "LIFELONG_QUALITY.rating.value"),
    ('{"rating": {"valeu": [1, 5]}}', "LIFELONG_QUALITY.rating: unknown key"),
    ('{"rating": {"max_per_user": 0}}', "LIFELONG_QUALITY.rating.max_per_user"),
    ('{"click": {"max_future_seconds": -1}}', "LIFELONG_QUALITY.click.max_future_seconds"),
    ("[1]", "LIFELONG_QUALITY: expected a JSON object"),
    ("{", "LIFELONG_QUALITY='{': not JSON"),
])
def test_bad_configuration_names_the_key(raw: str, named: str):
    with pytest.raises(QualityConfigError, match=named.replace("[", r"\[")):
        QualityGates.from_env_value(raw)


def test_settings_validate_the_gates_at_start_up():
    from lifelong.config import ConfigError, Settings

    with pytest.raises(ConfigError, match=r"LIFELONG_QUALITY\.rating\.value"):
        Settings.from_env({"LIFELONG_QUALITY": '{"rating": {"value": "high"}}'})
    assert Settings.from_env({}).quarantine_topic == "events.quarantine"
