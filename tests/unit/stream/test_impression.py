from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from stream.impression import MAX_ITEMS, Impression, decode_impression, encode_impression
from stream.schema import Rejected

ids = st.text(min_size=1, max_size=12).filter(lambda s: s.strip() != "")


@given(iid=ids, user=ids, items=st.lists(ids, min_size=1, max_size=20, unique=True),
       ts=st.floats(0, 2e9), model=st.none() | ids, version=st.none() | st.integers(1, 10**6),
       request=st.none() | ids)
def test_encode_decode_is_identity(iid, user, items, ts, model, version, request) -> None:
    imp = Impression(iid, user, tuple(items), ts, request, model, version)
    assert decode_impression(encode_impression(imp)) == imp


def reason(obj: dict) -> str:
    got = decode_impression(msgspec.json.encode(obj))
    assert isinstance(got, Rejected)
    return got.reason


def test_refusals_are_values_with_reasons() -> None:
    ok = {"impression_id": "x", "user_id": "u", "items": ["a", "b"], "ts": 5}
    assert decode_impression(msgspec.json.encode(ok)) == Impression("x", "u", ("a", "b"), 5.0)
    assert decode_impression(msgspec.json.encode({**ok, "ts": "1970-01-01T00:00:10Z"})).ts == 10
    assert reason({**ok, "items": []}).startswith("schema: `items` must list 1 to")
    assert reason({**ok, "items": ["a"] * 2}) == "schema: `items` lists an item twice"
    assert reason({**ok, "items": [f"i{n}" for n in range(MAX_ITEMS + 1)]}).startswith("schema")
    assert reason({**ok, "items": ["a", " "]}) == "schema: `items` must be non-empty strings"
    assert reason({**ok, "user_id": ""}) == "schema: `user_id` must be a non-empty string"
    assert reason({**ok, "shown": 1}).startswith("schema: Object contains unknown field")
    assert reason({**ok, "version": 0}) == "schema: `version` must be a positive integer"
    assert reason({**ok, "ts": "soon"}).startswith("schema: `ts` is not epoch seconds")
    assert reason({**ok, "items": "a"}).startswith("schema: Expected `array`")
    assert decode_impression(b'{"impression_id"').kind == "malformed"
    assert decode_impression(b'{"impression_id":"\xff"}').kind == "encoding"
    assert decode_impression(b" " * 70_000).kind == "too_large"
