"""Event v1: the one record shape producers send and learners accept.

An event is JSON (UTF-8, at most 64 KiB) with ``event_id``, ``user_id``, ``item_id``
(non-empty strings), ``type`` (``view|click|cart|purchase|rating``), ``value`` (a finite
number: the rating, or 1.0), ``ts`` (epoch seconds or ISO-8601; normalised to epoch
seconds) and an optional flat ``context`` map of string to number or string. Unknown
fields are refused, so a typo in a producer is seen at once instead of being dropped.
Context integers stay integers, so re-encoding a decoded event does not grow it (only
``value``/``ts`` integers gain a ``.0``). A key repeated inside one object keeps its last
value (msgspec's rule).

:func:`decode` (and :func:`from_fields`, its entry point for rows already split into
fields) never raises: it returns an :class:`Event` or a :class:`Rejected` that
carries the reason, ready for the dead-letter queue.

>>> ev = decode(b'{"event_id":"e1","user_id":"u1","item_id":"i9","type":"rating",'
...             b'"value":4,"ts":"2024-01-02T03:04:05Z"}')
>>> ev.value, ev.ts
(4.0, 1704164645.0)
>>> decode(encode(ev)) == ev
True
>>> decode(b'{"event_id":"e1"').reason
'malformed: Input data was truncated'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from stream.source import Record

__all__ = [
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "Decoded",
    "Event",
    "Rejected",
    "decode",
    "decode_wire",
    "encode",
    "from_fields",
    "parse_ts",
]

MAX_EVENT_BYTES = 64 * 1024
EventType = Literal["view", "click", "cart", "purchase", "rating"]
EVENT_TYPES: tuple[str, ...] = ("view", "click", "cart", "purchase", "rating")


class Event(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True,
            gc=False):
    """One user behaviour event (schema v1), already validated and normalised.

    Not tracked by the garbage collector (``gc=False``): its fields are strings, numbers
    and a flat map of them, which cannot form a cycle.
    """

    event_id: str
    user_id: str
    item_id: str
    type: EventType
    value: float
    ts: float
    context: dict[str, int | float | str] | None = None


class _Wire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The wire form: like :class:`Event` but ``ts`` may still be an ISO-8601 string."""

    event_id: str
    user_id: str
    item_id: str
    type: EventType
    value: float
    ts: float | str
    context: dict[str, int | float | str] | None = None


class Rejected(msgspec.Struct, frozen=True):
    """A record that is not a valid event, with the reason it was refused."""

    reason: str
    raw: bytes

    @property
    def kind(self) -> str:
        """The reason's category (``malformed``, ``schema``, ``too_large``...): a bounded label."""
        return self.reason.split(":", 1)[0]


class Decoded(Record, frozen=True, gc=False):
    """A record that carries its decoded event (or the reason it was refused).

    A source that parses rows itself (:class:`~stream.files.FileSource` with
    ``decoded=True``) emits these; the learner worker takes ``event`` as it is instead of
    decoding ``value`` again. ``value`` stays the bytes a dead letter keeps. Not tracked by
    the garbage collector (``gc=False``: its fields cannot form a cycle), so a record a row
    does not trigger extra collections over the learner's tables.
    """

    event: Event | Rejected | None = None


_decoder = msgspec.json.Decoder(_Wire)
_event_decoder = msgspec.json.Decoder(Event)  # the fast path: numeric ts, no context
_isfinite = math.isfinite
_encoder = msgspec.json.Encoder()


def parse_ts(ts: float | str) -> float:
    """Return epoch seconds for a number or an ISO-8601 string (naive means UTC).

    >>> parse_ts("1970-01-01T00:01:00+00:00"), parse_ts(5)
    (60.0, 5.0)
    """
    if isinstance(ts, str):
        parsed = datetime.fromisoformat(ts.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return float(ts)


def decode_wire(raw: bytes, decoder: msgspec.json.Decoder[Any]) -> Any:
    """The first checks every record type shares: size, UTF-8, JSON, the struct's schema.

    Returns what ``decoder`` decodes, or a :class:`Rejected` with the reason.

    >>> decode_wire(b"[1]" * 30000, _decoder).reason
    'too_large: 90000 bytes > 65536'
    """
    if len(raw) > MAX_EVENT_BYTES:
        return Rejected(f"too_large: {len(raw)} bytes > {MAX_EVENT_BYTES}", raw)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(f"encoding: not UTF-8 ({exc.reason} at byte {exc.start})", raw)
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        return Rejected(f"schema: {exc}", raw)
    except msgspec.DecodeError as exc:
        return Rejected(f"malformed: {exc}", raw)


def decode(raw: bytes | None) -> Event | Rejected:
    """Decode and validate one record; never raises.

    A Kafka tombstone (a record with a null value) is refused as ``tombstone``:

    >>> decode(None).reason
    'tombstone: the record has no value (a Kafka delete marker)'
    """
    if (raw.__class__ is bytes and len(raw) <= MAX_EVENT_BYTES  # type: ignore[arg-type]
            and raw.isascii()):  # type: ignore[union-attr]
        # the common record, decoded straight into an Event: ASCII (so UTF-8), a numeric
        # ts, no context, every rule met; anything else takes the full path below, which
        # gives the exact reason (the two agree: tests/unit/stream/test_schema_fast.py)
        try:
            ev = _event_decoder.decode(raw)  # type: ignore[arg-type]
        except msgspec.MsgspecError:
            pass
        else:
            if (ev.context is None and _isfinite(ev.value) and _isfinite(ev.ts)
                    and ev.event_id.strip() and ev.user_id.strip() and ev.item_id.strip()):
                return ev
    return _decode_full(raw)


def _decode_full(raw: bytes | None) -> Event | Rejected:
    """:func:`decode` without its fast path: every check in order, the exact reason."""
    if raw is None:
        return Rejected("tombstone: the record has no value (a Kafka delete marker)", b"")
    if not isinstance(raw, bytes | bytearray | memoryview):
        return Rejected(f"malformed: expected bytes, got {type(raw).__name__}", b"")
    raw = bytes(raw)
    wire = decode_wire(raw, _decoder)
    if isinstance(wire, Rejected):
        return wire
    out = _validate(wire.event_id, wire.user_id, wire.item_id, wire.type, wire.value, wire.ts,
                    wire.context)
    return out if isinstance(out, Event) else Rejected(out, raw)


def from_fields(event_id: str, user_id: str, item_id: str, type: str, value: float | str,
                ts: float | str, raw: Callable[[], bytes]) -> Event | Rejected:
    """Validate an event given as fields (a parsed file row) by :func:`decode`'s rules.

    The second entry point of the one validator: the result is what ``decode(raw())``
    returns, reason for reason, without encoding the row as JSON and decoding it again.
    ``raw`` makes the JSON of the row; it is called only where the row is refused (the
    dead letter keeps it) or where a field needs the JSON path to give the exact reason
    (a type that is not an event type, a value that is not a number, a field that is not
    ASCII or is long enough to come near :data:`MAX_EVENT_BYTES`).

    >>> from_fields("e1", "u1", "i1", "rating", 4.0, "1970-01-01T00:01:00Z", bytes).ts
    60.0
    >>> row = b'{"event_id":"e1","user_id":" ","item_id":"i1","type":"rating","value":4.0,"ts":1}'
    >>> from_fields("e1", " ", "i1", "rating", 4.0, 1.0, lambda: row) == decode(row)
    True
    """
    if (value.__class__ is not float or type not in EVENT_TYPES
            or not (event_id.isascii() and user_id.isascii() and item_id.isascii())):
        return decode(raw())
    if ts.__class__ is float:
        size = len(event_id) + len(user_id) + len(item_id)
    elif ts.__class__ is str and ts.isascii():  # type: ignore[union-attr]
        size = len(event_id) + len(user_id) + len(item_id) + len(ts)  # type: ignore[arg-type]
    else:
        return decode(raw())
    if 6 * size + 256 > MAX_EVENT_BYTES:  # near the limit (JSON escapes a character in <= 6)
        return decode(raw())
    out = _validate(event_id, user_id, item_id, type, value, ts, None)  # type: ignore[arg-type]
    return out if out.__class__ is Event else Rejected(out, raw())  # type: ignore[arg-type]


def _validate(event_id: str, user_id: str, item_id: str, type: EventType, value: float,
              ts: float | str, context: dict[str, int | float | str] | None) -> Event | str:
    """The rules past the schema's types: the event, or the reason it is refused."""
    if not event_id.strip():
        return "schema: `event_id` must be a non-empty string"
    if not user_id.strip():
        return "schema: `user_id` must be a non-empty string"
    if not item_id.strip():
        return "schema: `item_id` must be a non-empty string"
    if not math.isfinite(value):
        return "schema: `value` must be a finite number"
    if ts.__class__ is not float:
        try:
            ts = parse_ts(ts)
        except (ValueError, OverflowError) as exc:
            return f"schema: `ts` is not epoch seconds or ISO-8601 ({exc})"
    if not math.isfinite(ts):  # type: ignore[arg-type]
        return "schema: `ts` must be finite"
    if context is not None:
        for key, val in context.items():
            if isinstance(val, float) and not math.isfinite(val):
                return f"schema: context `{key}` must be finite"
    return Event(event_id, user_id, item_id, type, value, ts, context)  # type: ignore[arg-type]


def encode(event: Event) -> bytes:
    """Encode an event as compact JSON (the inverse of :func:`decode`)."""
    return _encoder.encode(event)
