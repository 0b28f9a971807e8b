"""decode's fast path (straight into an Event) agrees with the full path on every input."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.schema import Event, Rejected, _decode_full, decode

# field values that each rule has to look at: blank or non-ASCII ids, non-finite or huge
# numbers, bools, ISO and bogus timestamps, contexts, wrong types
texts = st.sampled_from(["u1", "", " ", "\t", "é", "x" * 70_000, "a b"]) | st.text(max_size=8)
numbers = (st.sampled_from([4, 4.5, 0, -1, 1e308, 10**30, True, "4", None, "1e999"])
           | st.floats(allow_nan=False, allow_infinity=False))
stamps = numbers | st.sampled_from(["2024-01-02T03:04:05Z", "2024-01-02", "yesterday", ""])
types = st.sampled_from(["rating", "click", "view", "like", "", 3])
contexts = st.sampled_from([None, {}, {"k": 1}, {"k": "v"}, {"k": 1.5}, {"k": [1]}, "x"])
FIELDS = {"event_id": texts, "user_id": texts, "item_id": texts, "type": types,
          "value": numbers, "ts": stamps, "context": contexts, "extra": st.just(1)}


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    keys = draw(st.lists(st.sampled_from(list(FIELDS)), unique=True, min_size=4, max_size=8))
    required = ["event_id", "user_id", "item_id", "type", "value", "ts"]
    if draw(st.booleans()):  # mostly complete records, some with fields missing
        keys = required + [k for k in keys if k not in required]
    doc = {k: draw(FIELDS[k]) for k in keys}
    text = json.dumps(doc, ensure_ascii=draw(st.booleans())).replace('"1e999"', "1e999")
    raw = text.encode()
    cut = draw(st.sampled_from([None, None, None, len(raw) // 2]))  # truncated JSON too
    return raw if cut is None else raw[:cut]


@settings(max_examples=400, deadline=None)
@given(payloads())
def test_fast_path_equals_full_path(raw: bytes) -> None:
    assert decode(raw) == _decode_full(raw)


def test_fast_path_types() -> None:
    ok = b'{"event_id":"e","user_id":"u","item_id":"i","type":"rating","value":4,"ts":5}'
    assert decode(ok) == Event("e", "u", "i", "rating", 4.0, 5.0)
    for bad in (ok.replace(b'"u"', b'" "'), ok.replace(b"5}", b"1e999}"), b"\xff" + ok,
                ok.replace(b'"ts":5', b'"ts":"2024-01-02"')):
        assert decode(bad) == _decode_full(bad)
    assert isinstance(decode(ok.replace(b'"u"', b'" "')), Rejected)
    assert decode(None) == _decode_full(None)
    assert decode(bytearray(ok)) == _decode_full(bytearray(ok)) == decode(ok)
