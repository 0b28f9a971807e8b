"""Events: schema, encoding, sources, producer, topic admin, replay and synthetic streams."""

from stream.schema import EVENT_TYPES, MAX_EVENT_BYTES, Event, Rejected, decode, encode

__all__ = ["EVENT_TYPES", "MAX_EVENT_BYTES", "Event", "Rejected", "decode", "encode"]
