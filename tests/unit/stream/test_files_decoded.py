"""``FileSource(decoded=True)``: the rows validated by ``from_fields`` equal the JSON path."""

from __future__ import annotations

import string
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.files import FileSource
from stream.schema import Decoded, Event, Rejected, decode, from_fields

BROKEN_CSV = (
    "userId,movieId,rating,timestamp,type\n"
    "u1,i1,4,1700000000,rating\n"
    "u2,i2,abc,1700000001,rating\n"          # value not a number
    " ,i3,3,1700000002,rating\n"             # empty user
    "u4,i4,3,1700000003,dislike\n"           # not an event type
    "u5,i5,3,not-a-time,rating\n"            # ts unparseable
    "u6,i6,inf,1700000004,rating\n"          # value not finite
    "u7,i7,3,1700000005\n"                   # a field missing
    'u8,"i8,3,1700000006,rating\n'           # unterminated quote
    "u9,i9,3,2024-01-02T03:04:05Z,click\n"   # ISO time
    "\u00fcser,\u00eftem,5,1700000007,rating\n"  # non-ASCII ids
    "u10,i10,5,1700000008,\n"                # empty type: the default
    "u11," + "x" * 70_000 + ",4,1700000009,rating\n"  # too large as an event
    "u12,i12,4,1e400,rating\n"               # ts not finite
)


def _pairs(path: Path, **kw: object) -> list[tuple[bytes | None, Event | Rejected]]:
    out = []
    with FileSource(path, decoded=True, **kw) as src:  # type: ignore[arg-type]
        while batch := src.poll():
            for rec in batch:
                assert isinstance(rec, Decoded)
                out.append((rec.value, rec.event if rec.event is not None
                            else decode(rec.value)))
    return out


def _json_path(path: Path, **kw: object) -> list[tuple[bytes | None, Event | Rejected]]:
    out = []
    with FileSource(path, **kw) as src:  # type: ignore[arg-type]
        while batch := src.poll():
            out.extend((rec.value, decode(rec.value)) for rec in batch)
    return out


def _same(path: Path, **kw: object) -> None:
    new, old = _pairs(path, **kw), _json_path(path, **kw)
    assert [e for _, e in new] == [e for _, e in old]
    for (value, event), (old_value, _) in zip(new, old, strict=True):
        if isinstance(event, Rejected):  # a dead letter keeps what it kept before
            assert value == old_value


def test_broken_rows_give_the_same_events_reasons_and_dead_letters(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(BROKEN_CSV.encode() + b"u13,i\xff13,4,1700000010,rating\n")
    _same(path, format="csv")
    _same(path, format="csv", sort_by_time=True)
    _same(path, format="csv", start_offset=3, batch_size=2)
    kinds = [e.kind for _, e in _pairs(path, format="csv") if isinstance(e, Rejected)]
    assert kinds == ["schema"] * 5 + ["malformed"] * 2 + ["too_large", "schema", "encoding"]


def test_movielens_rows(tmp_path: Path) -> None:
    path = tmp_path / "ratings.dat"
    path.write_text("1::10::4::100\n2::20::x::101\n3::30::5\n::40::3::102\n4::50::3::1e999\n")
    _same(path, format="movielens")
    assert sum(isinstance(e, Event) for _, e in _pairs(path, format="movielens")) == 1


_text = st.text(alphabet=string.ascii_letters + string.digits + " .-:eE,\"\u00e9", max_size=8)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_text, _text, _text, _text,
                               st.sampled_from(["rating", "click", "", "nope", " view "])),
                     max_size=12))
def test_any_csv_rows_decode_the_same(tmp_path: Path,
                                      rows: list[tuple[str, str, str, str, str]]) -> None:
    path = tmp_path / "any.csv"
    path.write_text("user,item,rating,ts,type\n" + "".join(
        ",".join(r) + "\n" for r in rows), encoding="utf-8")
    _same(path, format="csv", max_bad_rows=None)
    _same(path, format="csv", max_bad_rows=None, sort_by_time=True)


def test_from_fields_falls_back_to_the_json_path_for_the_exact_reason() -> None:
    row = (b'{"event_id":"e","user_id":"u","item_id":"i","type":"rating","value":"x",'
           b'"ts":1.0}')
    got = from_fields("e", "u", "i", "rating", "x", 1.0, lambda: row)
    assert got == decode(row) and isinstance(got, Rejected)
    assert got.reason.startswith("schema: Expected `float`")
