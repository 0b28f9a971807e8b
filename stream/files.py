r"""Replay rating and behaviour files through the :class:`~stream.source.Source` protocol.

Every data row becomes a :class:`~stream.source.Record` whose ``value`` is the JSON bytes
of an Event v1, so a file goes through the same decode/validate path as Kafka: ``topic``
is the path, ``partition`` 0 and ``offset`` the 0-based row in emission order. Rows that
cannot be converted never raise; they become records that :func:`stream.schema.decode`
rejects with a reason (the raw field kept, or the raw line for a broken row). Formats:
``movielens`` (``u.data`` tabs or ``ratings.dat`` ``::``), ``csv`` (header auto-detected)
and ``jsonl`` (one event per line, passed through unchanged). ``.gz`` files are read
transparently. Every format is one row per line (a CSV field cannot hold a line break), so
a broken row (a wrong number of fields, an unterminated quote) spoils only its own line:
it is logged with its line number and, past ``max_bad_rows`` of them (default
:data:`MAX_BAD_ROWS`), reading stops with a :class:`FileFormatError` naming the line.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "u.data"
>>> _ = path.write_text("196\t242\t3\t881250949\n186\t302\tabc\t891717742\n")
>>> src = FileSource(path, format="movielens")
>>> [r.value for r in src.poll()]  # doctest: +NORMALIZE_WHITESPACE
[b'{"event_id":"u.data:0","user_id":"196","item_id":"242","type":"rating","value":3.0,"ts":881250949.0}',
 b'{"event_id":"u.data:1","user_id":"186","item_id":"302","type":"rating","value":"abc","ts":891717742.0}']
>>> src.exhausted
True
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import os
from collections.abc import Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import IO, Literal, cast

import msgspec

from stream.schema import Decoded, Event, Rejected, from_fields, parse_ts
from stream.source import IterSource, Record

__all__ = ["FORMATS", "MAX_BAD_ROWS", "FileFormat", "FileFormatError", "FileSource", "count_rows",
           "parse_columns"]

log = logging.getLogger(__name__)

FileFormat = Literal["movielens", "csv", "jsonl"]
FORMATS: tuple[str, ...] = ("movielens", "csv", "jsonl")
MAX_BAD_ROWS = 100  # broken rows tolerated in a file before reading stops (None: no limit)
ROLES: tuple[str, ...] = ("user", "item", "value", "ts", "type", "event_id")
# Header names per role, compared after lower-casing and removing "_", "-" and spaces.
_CANDIDATES: dict[str, tuple[str, ...]] = {
    "user": ("userid", "user", "customerid", "customer", "uid", "visitorid", "clientid",
             "memberid", "accountid"),
    "item": ("movieid", "itemid", "item", "productid", "product", "iid", "articleid", "sku",
             "asin", "trackid", "bookid", "isbn", "movie"),
    "value": ("rating", "value", "score", "stars", "label", "weight"),
    "ts": ("timestamp", "ts", "time", "date", "datetime", "eventtime", "createdat", "unixtime"),
    "type": ("type", "eventtype", "event", "action"),
    "event_id": ("eventid",),
}
_encode = msgspec.json.Encoder().encode
# the record value (event JSON), its ts (None: read it from the JSON) and, with
# ``decoded``, the event that from_fields made of the row (None: the worker decodes value)
_Row = tuple[bytes, "float | str | None", "Event | Rejected | None"]


class FileFormatError(ValueError):
    """A file (or a ``--columns`` spec) that cannot be read as the format asked for."""


def _norm(name: str) -> str:  # "User_ID" -> "userid"
    return name.strip().lower().replace("_", "").replace("-", "").replace(" ", "")


def parse_columns(spec: str) -> dict[str, str]:
    """Parse the CLI's ``--columns`` spec, ``ROLE=NAME[,ROLE=NAME...]``.

    >>> parse_columns("user=uid, item=iid")
    {'user': 'uid', 'item': 'iid'}
    """
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        role, sep, name = (s.strip() for s in part.partition("="))
        if not sep or not role or not name:
            raise FileFormatError(f"--columns {spec!r}: {part!r} is not ROLE=NAME")
        if role not in ROLES:
            raise FileFormatError(
                f"--columns {spec!r}: unknown role {role!r}; roles are {', '.join(ROLES)}")
        if role in out:
            raise FileFormatError(f"--columns {spec!r}: role {role!r} given twice")
        out[role] = name
    return out


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return cast(IO[bytes], gzip.open(path, "rb") if gz else open(path, "rb"))


def _text(fh: IO[bytes]) -> io.TextIOWrapper:
    # surrogateescape keeps undecodable bytes, so a broken row goes out as its raw bytes.
    return io.TextIOWrapper(fh, encoding="utf-8", errors="surrogateescape", newline="")


def _num(text: str) -> float | str:
    """A finite number where the text is one, else the text itself (decode rejects it)."""
    try:
        x = float(text)
    except ValueError:
        return text
    return x if math.isfinite(x) else text


def _raw(line: str) -> bytes:  # the row's original bytes, even where they are not UTF-8
    return line.encode("utf-8", "surrogateescape")


def _ts_key(row: _Row) -> float:
    value, ts, _ = row
    if ts is None:
        try:
            obj = msgspec.json.decode(value)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return math.inf
        ts = obj.get("ts") if isinstance(obj, dict) else None
    try:
        key = parse_ts(ts)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.inf
    return key if math.isfinite(key) else math.inf


class FileSource(IterSource):
    r"""A finite :class:`~stream.source.Source` over a MovieLens, CSV or JSON-lines file.

    Rows stream from disk in ``batch_size`` batches, except with ``sort_by_time`` where the
    file is read once and stably sorted by ``ts`` (unparseable times last). ``offset`` counts
    rows in emission order and ``event_id`` (when the file has none) is ``{basename}:{row}``
    with the row in file order, so ids are stable across runs and sorting. To resume, build a
    new source with ``start_offset`` set to the offset after the last one processed (the
    ``position`` at that time, or what was committed); it continues exactly there.
    ``columns`` (csv only) maps roles ``user item value ts type event_id`` to header names.
    A row that cannot be split into its fields becomes a record that decode refuses, and is
    logged with its line number; more than ``max_bad_rows`` such rows stop the reading
    (:class:`FileFormatError` naming the line; ``None``: no limit). ``bad_rows`` counts them.
    With ``decoded`` (what ``lifelong evaluate`` uses) the records are
    :class:`~stream.schema.Decoded`: each movielens/csv row is validated by
    :func:`~stream.schema.from_fields` (the rules of :func:`~stream.schema.decode`, same
    results and reasons) without the JSON round trip; a refused row's ``value`` is the
    event JSON as without ``decoded``, a valid row's is its raw line.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "data.csv"
    >>> _ = path.write_text("customer_id,product_id,when\nc1,p1,2024-01-01\n")
    >>> src = FileSource(path, format="csv", columns={"ts": "when"}, event_type="purchase")
    >>> src.poll()[0].value
    b'{"event_id":"data.csv:0","user_id":"c1","item_id":"p1","type":"purchase","value":1.0,"ts":"2024-01-01"}'
    """

    def __init__(self, path: str | os.PathLike[str], *, format: FileFormat,
                 columns: Mapping[str, str] | None = None, sort_by_time: bool = False,
                 batch_size: int = 1000, event_type: str = "rating", start_offset: int = 0,
                 max_bad_rows: int | None = MAX_BAD_ROWS, decoded: bool = False):
        super().__init__(os.fspath(path), batch_size, start_offset)
        self.decoded = decoded
        self._pairs: Iterator[tuple[bytes, Event | Rejected | None]] | None = None
        self._ahead: tuple[bytes, Event | Rejected | None] | None = None
        self.max_bad_rows = max_bad_rows
        self.bad_rows = 0
        self.path = path
        self.format = format
        self.columns = columns
        self.sort_by_time = sort_by_time
        self.event_type = event_type
        if format not in FORMATS:
            raise FileFormatError(f"{path}: unknown format {format!r}; use one of {FORMATS}")
        if columns and format != "csv":
            raise FileFormatError(f"{path}: columns only apply to format 'csv', not {format!r}")
        self._base = Path(path).name
        self._fh: IO[bytes] | None = _open(Path(path))
        self._rows = self._read(self._fh)  # reads (and checks) a csv header at once

    # -- reading ------------------------------------------------------------------------
    def _read(self, fh: IO[bytes]) -> Iterator[_Row]:
        if self.format == "jsonl":
            return ((line.rstrip(b"\r\n"), None, None) for line in fh if line.strip())
        text = _text(fh)
        if self.format == "movielens":
            return self._movielens(_split_movielens(text))
        delim, header, rows = _split_csv(text, self.topic)
        return self._csv(self._resolve(header), delim, len(header), rows)

    def _resolve(self, header: list[str]) -> dict[str, int]:
        found = {_norm(h): i for i, h in reversed(list(enumerate(header)))}
        given = dict(self.columns or {})
        unknown = sorted(set(given) - set(ROLES))
        if unknown:
            raise FileFormatError(f"{self.topic}: unknown column roles {unknown}; roles are "
                                  f"{', '.join(ROLES)}")
        taken = {header.index(n) for n in given.values() if n in header}
        out: dict[str, int] = {}
        for role in ROLES:
            if role in given:
                if given[role] not in header:
                    raise FileFormatError(f"{self.topic}: no column {given[role]!r} (given for "
                                          f"{role}); found {header}")
                out[role] = header.index(given[role])
                continue
            hit = next((found[c] for c in _CANDIDATES[role]
                        if c in found and found[c] not in taken), None)
            if hit is not None:
                out[role] = hit
            elif role in ("user", "item"):
                raise FileFormatError(
                    f"{self.topic}: no {role} column; found {header}; expected one of "
                    f"{', '.join(_CANDIDATES[role])} (any case, '_' optional); "
                    f"pass --columns {role}=NAME")
        log.debug("%s: columns %s", self.topic, {r: header[i] for r, i in out.items()})
        return out

    def _event(self, row: int, line: str, user: str, item: str, value: str | None,
               ts: str | None, etype: str | None = None, event_id: str | None = None) -> _Row:
        ts_val = float(row) if ts is None else _num(ts)
        eid, uid, iid = event_id or f"{self._base}:{row}", user.strip(), item.strip()
        etype_ = (etype or "").strip() or self.event_type
        val = 1.0 if value is None else _num(value)
        if not self.decoded:
            return _json_row(eid, uid, iid, etype_, val, ts_val, line)
        event = from_fields(eid, uid, iid, etype_, val, ts_val,
                            lambda: _json_row(eid, uid, iid, etype_, val, ts_val, line)[0])
        if event.__class__ is Event:
            return _raw(line), ts_val, event
        raw, when, _ = _json_row(eid, uid, iid, etype_, val, ts_val, line)  # refused: as before
        return raw, when, event

    def _bad(self, number: int, line: str, why: str) -> _Row:
        self.bad_rows += 1
        where = f"{self.topic}: line {number}: {why}"
        if self.max_bad_rows is not None and self.bad_rows > self.max_bad_rows:
            raise FileFormatError(f"{where}; {self.bad_rows} broken rows, more than "
                                  f"--max-bad-rows {self.max_bad_rows}: fix the file")
        if self.bad_rows <= 20:
            log.warning("%s (the row goes to the dead letters)", where)
        return _raw(line), None, None

    def _movielens(self, rows: Iterator[tuple[int, str, list[str]]]) -> Iterator[_Row]:
        for row, (number, line, f) in enumerate(rows):
            yield self._event(row, line, *f) if len(f) == 4 else \
                self._bad(number, line, f"expected 4 fields, found {len(f)}")

    def _csv(self, cols: dict[str, int], delim: str, width: int,
             rows: Iterator[tuple[int, str, list[str] | str]]) -> Iterator[_Row]:
        # the optional roles read from a spare last field, None, when the file has no column
        user, item = cols["user"], cols["item"]
        value, ts, etype, eid = (cols.get(r, width) for r in ("value", "ts", "type", "event_id"))
        for row, (number, line, f) in enumerate(rows):
            if isinstance(f, str):  # the csv error
                yield self._bad(number, line, f)
                continue
            if len(f) != width:
                yield self._bad(number, line, f"expected {width} fields, found {len(f)}")
                continue
            f.append(None)  # type: ignore[arg-type]
            yield self._event(row, line, f[user], f[item], f[value], f[ts], f[etype], f[eid])

    def _ordered(self) -> Iterator[_Row]:
        rows: Iterator[_Row] = self._rows
        if self.sort_by_time:
            rows = iter(sorted(rows, key=_ts_key))
        return islice(rows, self.start_offset, None)

    def _open(self) -> Iterator[bytes]:
        return (value for value, _, _ in self._ordered())

    def poll(self, timeout: float = 1.0) -> list[Record]:
        """Return up to ``batch_size`` records (``Decoded`` ones with ``decoded``); no wait."""
        if not self.decoded:
            return super().poll(timeout)
        if self._pairs is None and not self._closed:
            self._pairs = ((value, event) for value, _, event in self._ordered())
            self._ahead = next(self._pairs, None)
        out: list[Record] = []
        topic, size = self.topic, self.batch_size
        while self._ahead is not None and len(out) < size:
            value, event = self._ahead
            out.append(Decoded(value, topic, 0, self._next, event=event))
            self._next += 1
            self._ahead = next(self._pairs, None)  # type: ignore[arg-type]
        if self._ahead is None:
            self.close()
        return out

    def close(self) -> None:
        """Close the file; later polls return nothing."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._pairs, self._ahead = iter(()), None
        super().close()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_row(eid: str, uid: str, iid: str, etype: str, value: float | str, ts: float | str,
              line: str) -> _Row:
    obj = {"event_id": eid, "user_id": uid, "item_id": iid, "type": etype, "value": value,
           "ts": ts}
    try:
        return _encode(obj), ts, None
    except UnicodeEncodeError:  # undecodable bytes in a field: keep the raw line
        return _raw(line), None, None


def _split_movielens(text: IO[str]) -> Iterator[tuple[int, str, list[str]]]:
    """Yield ``(line number, line, fields)`` per non-blank line (separator from the first)."""
    sep: str | None = None
    for number, line in enumerate(text, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if sep is None:
            sep = next((s for s in ("::", "\t", ",") if s in line), " ")
            head = [_norm(f) for f in line.split(sep)]
            if len(head) >= 2 and head[0] in _CANDIDATES["user"] and head[1] in \
                    _CANDIDATES["item"]:
                continue  # a header line, as in ML-latest's ratings.csv
        yield number, line, line.split(sep) if sep != " " else line.split()


def _split_csv(text: IO[str], name: str) -> tuple[str, list[str],
                                                  Iterator[tuple[int, str, list[str] | str]]]:
    """Return the delimiter, the header and ``(line number, line, fields)`` per data row.

    Each line is parsed alone, so an unterminated quote spoils one row, not the rest of the
    file; ``fields`` is then the csv error text.
    """
    lines = enumerate(text, start=1)
    first = next(((n, line) for n, line in lines if line.strip()), None)
    if first is None:
        raise FileFormatError(f"{name}: empty file, expected a CSV header line")
    delim = max(",\t;|", key=first[1].count)
    header = _fields(first[1], delim)
    if isinstance(header, str):
        raise FileFormatError(f"{name}: line {first[0]}: the header is not CSV ({header})")
    rows = ((n, line.rstrip("\r\n"), _fields(line, delim)) for n, line in lines
            if line.strip())
    return delim, [h.strip() for h in header], rows


def _fields(line: str, delim: str) -> list[str] | str:
    """The fields of one CSV line, or the csv error (e.g. an unterminated quote)."""
    if '"' not in line and "\r" not in line.rstrip("\r\n"):  # what csv would split the same
        return line.rstrip("\r\n").split(delim)
    try:
        return next(csv.reader([line.rstrip("\r\n")], delimiter=delim, strict=True))
    except csv.Error as exc:
        return f"not CSV ({exc})"


def count_rows(path: str | os.PathLike[str], format: FileFormat) -> int:
    r"""Count the data rows a :class:`FileSource` would return (for progress bars).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "r.csv"
    >>> _ = path.write_text("userId,movieId\n1,2\n\n3,4\n")
    >>> count_rows(path, "csv")
    2
    """
    if format not in FORMATS:
        raise FileFormatError(f"{path}: unknown format {format!r}; use one of {FORMATS}")
    with _open(Path(path)) as fh:
        if format == "jsonl":
            return sum(1 for line in fh if line.strip())
        text = _text(fh)
        if format == "csv":  # a row per non-blank line after the header: no need to split
            return max(0, sum(1 for line in text if line.strip()) - 1)
        return sum(1 for _ in _split_movielens(text))
