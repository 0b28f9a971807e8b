"""Events: schema, encoding, sources, producer, topic admin, replay and synthetic streams."""

from stream.files import FileFormatError, FileSource, count_rows, parse_columns
from stream.impression import Impression, decode_impression, encode_impression
from stream.schema import EVENT_TYPES, MAX_EVENT_BYTES, Event, Rejected, decode, encode
from stream.source import DeadLetters, ListDeadLetters, ListSource, Record, Source
from stream.synthetic import CORRUPTIONS, SyntheticSource, SyntheticStream
from stream.synthetic import write as write_synthetic
from stream.synthetic_implicit import ImplicitStream

__all__ = [
    "CORRUPTIONS",
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "DeadLetters",
    "Event",
    "FileFormatError",
    "FileSource",
    "ImplicitStream",
    "Impression",
    "ListDeadLetters",
    "ListSource",
    "Record",
    "Rejected",
    "Source",
    "SyntheticSource",
    "SyntheticStream",
    "count_rows",
    "decode",
    "decode_impression",
    "encode",
    "encode_impression",
    "parse_columns",
    "write_synthetic",
]
