"""Property tests for Event v1: encode/decode round trip, decode never raises, mutations."""

from __future__ import annotations

from datetime import datetime

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.schema import EVENT_TYPES, MAX_EVENT_BYTES, Event, Rejected, decode, encode, parse_ts

ids = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")
finite = st.floats(allow_nan=False, allow_infinity=False)
contexts = st.none() | st.dictionaries(st.text(max_size=10), finite | st.text(max_size=10),
                                       max_size=5)
events = st.builds(Event, event_id=ids, user_id=ids, item_id=ids,
                   type=st.sampled_from(EVENT_TYPES), value=finite, ts=finite, context=contexts)
REQUIRED = ("event_id", "user_id", "item_id", "type", "value", "ts")


def wire(event: Event) -> dict[str, object]:
    return msgspec.json.decode(encode(event))


def rejected(raw: bytes, kind: str) -> Rejected:
    result = decode(raw)
    assert isinstance(result, Rejected), raw[:200]
    assert result.kind == kind, result.reason
    assert result.raw == raw
    return result


@given(events)
def test_encode_then_decode_is_identity(event: Event) -> None:
    assert decode(encode(event)) == event


@given(events, st.datetimes(timezones=st.timezones()))
def test_iso_timestamps_are_normalised_to_epoch_seconds(event: Event, when: datetime) -> None:
    d = wire(event)
    d["ts"] = when.isoformat()
    result = decode(msgspec.json.encode(d))
    assert isinstance(result, Event)
    assert result.ts == when.timestamp() == parse_ts(when.isoformat())


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_decode(raw: bytes) -> None:
    assert isinstance(decode(raw), Event | Rejected)


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.sampled_from((*REQUIRED, "context", "x")), kids,
                                      max_size=7), max_leaves=12))
def test_random_json_never_crashes_decode(obj: object) -> None:
    assert isinstance(decode(msgspec.json.encode(obj)), Event | Rejected)


@given(events, st.sampled_from(REQUIRED))
def test_missing_required_field_is_schema(event: Event, field: str) -> None:
    d = wire(event)
    del d[field]
    assert f"`{field}`" in rejected(msgspec.json.encode(d), "schema").reason


_NOT_ANY = [None, True, [], {}]
WRONG = [(f, bad) for f in ("event_id", "user_id", "item_id") for bad in [*_NOT_ANY, 3]] + [
    ("type", bad) for bad in [*_NOT_ANY, 3, "text", ""]] + [
    ("value", bad) for bad in [*_NOT_ANY, "text", "", "1"]] + [
    ("ts", bad) for bad in [*_NOT_ANY, "text", "", "1700000000", "2024-13-01"]]


@given(events, st.sampled_from(WRONG))
def test_wrong_type_is_schema(event: Event, field_bad: tuple[str, object]) -> None:
    field, bad = field_bad
    d = wire(event)
    d[field] = bad
    assert field in rejected(msgspec.json.encode(d), "schema").reason


@given(events, st.sampled_from(("event_id", "user_id", "item_id")),
       st.sampled_from(("", " ", "\t", "  \n")))
def test_empty_or_blank_id_is_schema(event: Event, field: str, blank: str) -> None:
    d = wire(event)
    d[field] = blank
    assert "non-empty" in rejected(msgspec.json.encode(d), "schema").reason


@given(events, st.sampled_from(("value", "ts", "context")), st.sampled_from(("1e999", "-1e999")))
def test_non_finite_numbers_are_schema(event: Event, field: str, number: str) -> None:
    d = wire(event)
    d[field] = {"k": "<n>"} if field == "context" else "<n>"
    raw = msgspec.json.encode(d).replace(b'"<n>"', number.encode())
    rejected(raw, "schema")


@given(events, st.text(min_size=1, max_size=10).filter(lambda k: k not in (*REQUIRED, "context")))
def test_unknown_field_is_schema(event: Event, name: str) -> None:
    d = wire(event)
    d[name] = 1
    rejected(msgspec.json.encode(d), "schema")


@given(events, st.text(min_size=1, max_size=10).filter(lambda t: t not in EVENT_TYPES))
def test_unknown_type_is_schema(event: Event, kind: str) -> None:
    d = wire(event)
    d["type"] = kind
    rejected(msgspec.json.encode(d), "schema")


@given(events, st.sampled_from(({"k": [1]}, {"k": {"a": 1}}, {"k": None}, {"k": True}, [1])))
def test_context_must_be_flat_string_to_number_or_string(event: Event, ctx: object) -> None:
    d = wire(event)
    d["context"] = ctx
    rejected(msgspec.json.encode(d), "schema")


@given(events)
def test_too_large_is_rejected_even_if_valid_json(event: Event) -> None:
    d = wire(event)
    d["context"] = {"pad": "x" * MAX_EVENT_BYTES}
    rejected(msgspec.json.encode(d), "too_large")


def test_exactly_max_bytes_is_accepted() -> None:
    base = Event("e", "u", "i", "view", 1.0, 1.0, {"pad": ""})
    pad = "x" * (MAX_EVENT_BYTES - len(encode(base)))
    raw = encode(Event("e", "u", "i", "view", 1.0, 1.0, {"pad": pad}))
    assert len(raw) == MAX_EVENT_BYTES and isinstance(decode(raw), Event)
    rejected(raw[:-1] + b' }', "too_large")


@given(events, st.integers(min_value=1))
def test_truncated_is_malformed(event: Event, cut: int) -> None:
    text = encode(event).decode()  # cut between characters: a cut inside one is `encoding`
    rejected(text[: cut % len(text)].encode(), "malformed")


@given(events, st.sampled_from((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80")))
def test_non_utf8_is_encoding(event: Event, junk: bytes) -> None:
    raw = encode(event).replace(b'"user_id":"', b'"user_id":"' + junk, 1)
    rejected(raw, "encoding")
