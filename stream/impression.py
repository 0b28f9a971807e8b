"""Impression v1: what a subscriber showed a user, so clicks can be joined to it.

An impression is JSON (UTF-8, at most 64 KiB) with ``impression_id`` and ``user_id``
(non-empty strings), ``items`` (the ids shown, in slot order: 1 to :data:`MAX_ITEMS`
distinct non-empty strings), ``ts`` (epoch seconds or ISO-8601, normalised to epoch
seconds) and optional ``request_id``, ``model`` and ``version`` (the model version that
ranked the list). Unknown fields are refused, like Event v1.

:func:`decode_impression` never raises: it returns an :class:`Impression` or a
:class:`~stream.schema.Rejected` with the reason (same bounded reason kinds as events).

>>> imp = Impression("imp-1", "u1", ("i3", "i9"), 1704164645.0, model="reco", version=7)
>>> decode_impression(encode_impression(imp)) == imp
True
>>> decode_impression(b'{"impression_id":"x","user_id":"u","items":[],"ts":1}').reason
'schema: `items` must list 1 to 1000 shown items'
"""

from __future__ import annotations

import math

import msgspec

from stream.schema import Rejected, decode_wire, parse_ts

__all__ = ["MAX_ITEMS", "Impression", "decode_impression", "encode_impression"]

MAX_ITEMS = 1000


class Impression(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One list of items shown to one user (schema v1), validated and normalised."""

    impression_id: str
    user_id: str
    items: tuple[str, ...]
    ts: float
    request_id: str | None = None
    model: str | None = None
    version: int | None = None


class _Wire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    impression_id: str
    user_id: str
    items: tuple[str, ...]
    ts: float | str
    request_id: str | None = None
    model: str | None = None
    version: int | None = None


_decoder = msgspec.json.Decoder(_Wire)
_encoder = msgspec.json.Encoder()


def decode_impression(raw: bytes) -> Impression | Rejected:
    """Decode and validate one impression record; never raises."""
    wire = decode_wire(raw, _decoder)
    if isinstance(wire, Rejected):
        return wire
    for name in ("impression_id", "user_id"):
        if not getattr(wire, name).strip():
            return Rejected(f"schema: `{name}` must be a non-empty string", raw)
    if not 1 <= len(wire.items) <= MAX_ITEMS:
        return Rejected(f"schema: `items` must list 1 to {MAX_ITEMS} shown items", raw)
    if any(not item.strip() for item in wire.items):
        return Rejected("schema: `items` must be non-empty strings", raw)
    if len(set(wire.items)) != len(wire.items):
        return Rejected("schema: `items` lists an item twice", raw)
    if wire.version is not None and wire.version < 1:
        return Rejected("schema: `version` must be a positive integer", raw)
    try:
        ts = parse_ts(wire.ts)
    except (ValueError, OverflowError) as exc:
        return Rejected(f"schema: `ts` is not epoch seconds or ISO-8601 ({exc})", raw)
    if not math.isfinite(ts):
        return Rejected("schema: `ts` must be finite", raw)
    return Impression(wire.impression_id, wire.user_id, wire.items, ts, wire.request_id,
                      wire.model, wire.version)


def encode_impression(impression: Impression) -> bytes:
    """Encode an impression as compact JSON (the inverse of :func:`decode_impression`)."""
    return _encoder.encode(impression)
