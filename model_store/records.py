"""Value types of the model store: a version, an alias move, a notification.

All three are frozen ``msgspec`` structs: cheap to build, safe to share between threads.

>>> v = ModelVersion(model="reco", number=3, format="safetensors", sha256="ab", size=2,
...                  created=0.0)
>>> v.created_at.isoformat(), v.ref
('1970-01-01T00:00:00+00:00', 'reco@3')
>>> ModelVersion.from_fields("reco", 3, v.to_fields()) == v
True
>>> StoreEvent.from_json(StoreEvent("publish", "reco", 3, "latest", 1.5).to_json()).version
3
>>> alarm = StoreEvent("alarm", "reco", 3, "", 1.5, detail={"alarm": "drift", "events": 9})
>>> StoreEvent.from_fields(alarm.to_fields()) == alarm
True
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = ["AliasChange", "ModelVersion", "StoreEvent", "decode_offsets", "encode_offsets"]


class ModelVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One immutable, numbered version of a model, as its metadata hash records it.

    ``offsets`` are the source positions the model covers (e.g. ``{"events:0": 1200}``),
    ``metrics`` its evaluation scores, ``tags`` free labels, ``extra`` any other JSON
    metadata given at publish (``events_seen`` ...). ``signature`` is ``""`` when unsigned.
    ``announced`` is when an alias last pointed at it (retention keeps it a while after).
    """

    model: str
    number: int
    format: str
    sha256: str
    size: int
    created: float
    parent: int | None = None
    signature: str = ""
    chunks: int = 0
    chunk_size: int = 0
    announced: float = 0.0
    offsets: dict[str, Any] = msgspec.field(default_factory=dict)
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)
    tags: dict[str, Any] = msgspec.field(default_factory=dict)
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    def to_fields(self) -> dict[str, str]:
        """Flat string fields, as the metadata hash stores them."""
        def js(value: dict[str, Any]) -> str:
            return msgspec.json.encode(value).decode()

        return {
            "model": self.model, "number": str(self.number), "format": self.format,
            "sha256": self.sha256, "size": str(self.size), "created": repr(self.created),
            "created_iso": self.created_at.isoformat(), "announced": repr(self.announced),
            "parent": "" if self.parent is None else str(self.parent),
            "signature": self.signature, "chunks": str(self.chunks),
            "chunk_size": str(self.chunk_size), "offsets": js(self.offsets),
            "metrics": js(self.metrics), "tags": js(self.tags), "extra": js(self.extra),
        }

    @classmethod
    def from_fields(cls, model: str, number: int, fields: dict[str, str]) -> ModelVersion:
        """Rebuild from a metadata hash (:meth:`to_fields` output)."""
        def obj(name: str) -> dict[str, Any]:
            return msgspec.json.decode(fields.get(name) or "{}")

        return cls(
            model=model, number=number, format=fields["format"], sha256=fields["sha256"],
            size=int(fields["size"]), created=float(fields["created"]),
            parent=int(fields["parent"]) if fields.get("parent") else None,
            signature=fields.get("signature", ""), chunks=int(fields.get("chunks", 0)),
            chunk_size=int(fields.get("chunk_size", 0)),
            announced=float(fields.get("announced") or 0.0), offsets=obj("offsets"),
            metrics=obj("metrics"), tags=obj("tags"), extra=obj("extra"),
        )

    @property
    def created_at(self) -> datetime:
        """``created`` as a timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self.created, tz=UTC)

    @property
    def ref(self) -> str:
        """``model@number``, for log lines."""
        return f"{self.model}@{self.number}"


class AliasChange(msgspec.Struct, frozen=True, kw_only=True):
    """One move of an alias: who moved it, when, from which version to which.

    ``kind`` is ``publish`` (``latest`` moved by a publish), ``set`` or ``rollback``.
    """

    alias: str
    to: int
    previous: int | None
    actor: str
    ts: float
    kind: str = "set"


class StoreEvent(msgspec.Struct, frozen=True):
    """A notification, sent on the pub/sub channel and appended to the stream log.

    ``kind`` is ``publish``, ``alias`` or ``alarm``. For ``publish`` and ``alias``, ``alias``
    names the alias that now points at ``version`` (``latest`` for a publish that moved it,
    ``""`` if it did not). An ``alarm`` (e.g. drift, see ``Registry.alarm``) moves nothing:
    ``alias`` is ``""``, ``version`` is the model's ``latest`` when it was raised (0 if
    none), and ``detail`` holds ``{"alarm": <alarm kind>, ...}``.
    """

    kind: str
    model: str
    version: int
    alias: str
    ts: float
    previous: int | None = None
    actor: str = ""
    detail: dict[str, Any] = msgspec.field(default_factory=dict)

    def to_json(self) -> bytes:
        """Encode as the JSON payload published on the channel."""
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> StoreEvent:
        """Decode a channel payload."""
        return msgspec.json.decode(data, type=cls)

    def to_fields(self) -> dict[str, str]:
        """Flat string fields, as a stream entry stores them."""
        return {
            "kind": self.kind,
            "model": self.model,
            "version": str(self.version),
            "alias": self.alias,
            "ts": repr(self.ts),
            "previous": "" if self.previous is None else str(self.previous),
            "actor": self.actor,
            **({"detail": msgspec.json.encode(self.detail).decode()} if self.detail else {}),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> StoreEvent:
        """Rebuild from :meth:`to_fields` output."""
        prev = fields.get("previous", "")
        detail = fields.get("detail")
        return cls(
            kind=fields["kind"],
            model=fields["model"],
            version=int(fields["version"]),
            alias=fields.get("alias", ""),
            ts=float(fields["ts"]),
            previous=int(prev) if prev else None,
            actor=fields.get("actor", ""),
            detail=msgspec.json.decode(detail) if detail else {},
        )


# offsets: a version's ``offsets`` field <-> source positions -----------------------------
def encode_offsets(positions: dict[tuple[str, int], int]) -> dict[str, int]:
    """``{(topic, partition): next offset}`` as a version's ``offsets`` (``"topic:p"`` keys).

    >>> encode_offsets({("events", 2): 7, ("events", 0): 10})
    {'events:0': 10, 'events:2': 7}
    """
    return {f"{t}:{p}": int(o) for (t, p), o in sorted(positions.items())}


def decode_offsets(offsets: dict[str, Any], topic: str | None = None
                   ) -> dict[tuple[str, int], int]:
    """The positions :func:`encode_offsets` wrote (only ``topic``'s when given).

    >>> decode_offsets({"events:0": 10, "events:2": 7, "other:0": 3}, "events")
    {('events', 0): 10, ('events', 2): 7}
    >>> decode_offsets(encode_offsets({("a:b", 1): 5}))  # topics may hold colons
    {('a:b', 1): 5}
    """
    out = {}
    for key, offset in offsets.items():
        name, _, partition = key.rpartition(":")
        if partition.isdigit() and (topic is None or name == topic):
            out[(name, int(partition))] = int(offset)
    return out
