from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from stream.files import FileFormatError, FileSource, count_rows, parse_columns
from stream.schema import Event, Rejected, decode
from stream.source import Record, Source


def read_all(src: FileSource) -> list[Record]:
    out: list[Record] = []
    while not src.exhausted:
        out.extend(src.poll())
    return out


def decoded(path: Path, **kw) -> list[Event | Rejected]:
    return [decode(r.value) for r in read_all(FileSource(path, **kw))]


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


# -- movielens ------------------------------------------------------------------------------
def test_movielens_tab_rows_become_events(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    records = read_all(FileSource(path, format="movielens"))
    assert [(r.topic, r.partition, r.offset) for r in records] == [(str(path), 0, 0),
                                                                   (str(path), 0, 1)]
    assert decode(records[0].value) == Event("u.data:0", "196", "242", "rating", 3.0, 881250949.0)
    assert decode(records[1].value).user_id == "186"


def test_movielens_double_colon_and_header_and_crlf(tmp_path: Path) -> None:
    dat = write(tmp_path / "ratings.dat", "1::1193::5::978300760\r\n1::661::3::978302109\r\n")
    assert [e.item_id for e in decoded(dat, format="movielens")] == ["1193", "661"]
    latest = write(tmp_path / "ratings.csv",
                   "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n")
    assert decoded(latest, format="movielens") == [
        Event("ratings.csv:0", "1", "31", "rating", 2.5, 1260759144.0)]
    assert count_rows(latest, "movielens") == 1


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    path = tmp_path / "u.data.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"1\t2\t4\t100\n3\t4\t5\t101\n")
    events = decoded(path, format="movielens")
    assert [(e.user_id, e.value, e.event_id) for e in events] == [
        ("1", 4.0, "u.data.gz:0"), ("3", 5.0, "u.data.gz:1")]
    assert count_rows(path, "movielens") == 2


# -- csv ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("header", "row", "expected"), [
    ("userId,movieId,rating,timestamp", "7,9,4.5,1000", ("7", "9", 4.5, 1000.0)),
    ("user_id,item_id,value,ts", "a,b,2,2024-01-01T00:00:00Z", ("a", "b", 2.0, 1704067200.0)),
    ("UserID;ItemID;score;date", "u;i;1;1970-01-02", ("u", "i", 1.0, 86400.0)),
    ("customer_id\tproduct_id", "c\tp", ("c", "p", 1.0, 0.0)),
    ("Visitor ID,SKU,Stars,Time", "v,s,3,5", ("v", "s", 3.0, 5.0)),
])
def test_csv_detects_common_headers(tmp_path: Path, header: str, row: str,
                                    expected: tuple[str, str, float, float]) -> None:
    path = write(tmp_path / "data.csv", f"{header}\n{row}\n")
    (event,) = decoded(path, format="csv")
    assert isinstance(event, Event)
    assert (event.user_id, event.item_id, event.value, event.ts) == expected
    assert event.event_id == "data.csv:0"


def test_csv_without_ts_uses_row_index_and_event_type(tmp_path: Path) -> None:
    path = write(tmp_path / "clicks.csv", "user,item\na,x\nb,y\n")
    events = decoded(path, format="csv", event_type="click")
    assert [(e.type, e.value, e.ts) for e in events] == [("click", 1.0, 0.0), ("click", 1.0, 1.0)]


def test_csv_type_and_event_id_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "ev.csv", "event_id,user_id,item_id,type,ts\n"
                                      "e1,u,i,purchase,5\n,u,i,,6\n")
    events = decoded(path, format="csv")
    assert [(e.event_id, e.type) for e in events] == [("e1", "purchase"), ("ev.csv:1", "rating")]


def test_csv_column_overrides(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "a,b,c,user_id\nx,y,3,ignored\n")
    (event,) = decoded(path, format="csv", columns={"user": "a", "item": "b", "value": "c"})
    assert (event.user_id, event.item_id, event.value) == ("x", "y", 3.0)


def test_csv_missing_column_names_file_columns_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,b\n1,2\n")
    with pytest.raises(FileFormatError) as info:
        FileSource(path, format="csv")
    message = str(info.value)
    assert message.startswith(f"{path}: no user column; found ['a', 'b']")
    assert "expected one of userid, user, customerid" in message
    assert "pass --columns user=NAME" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(FileFormatError, match="no column 'zz' \\(given for item\\)"):
        FileSource(path, format="csv", columns={"user": "a", "item": "zz"})
    with pytest.raises(FileFormatError, match="empty file"):
        FileSource(write(tmp_path / "empty.csv", "\n"), format="csv")


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "1\t2\t3\t4\n")
    with pytest.raises(FileFormatError, match="unknown format 'parquet'"):
        FileSource(path, format="parquet")  # type: ignore[arg-type]
    with pytest.raises(FileFormatError, match="columns only apply"):
        FileSource(path, format="movielens", columns={"user": "a"})
    with pytest.raises(FileFormatError, match="unknown column roles \\['usr'\\]"):
        FileSource(write(tmp_path / "x.csv", "user,item\n"), format="csv", columns={"usr": "u"})


def test_parse_columns() -> None:
    assert parse_columns("user=uid,item=iid, ts = when") == {"user": "uid", "item": "iid",
                                                              "ts": "when"}
    assert parse_columns("") == {}
    for spec, match in [("user", "not ROLE=NAME"), ("user=", "not ROLE=NAME"),
                        ("who=x", "unknown role 'who'"), ("user=a,user=b", "given twice")]:
        with pytest.raises(FileFormatError, match=match):
            parse_columns(spec)


# -- bad rows are data, not exceptions ------------------------------------------------------
def test_bad_rows_become_rejected_records(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"userId,movieId,rating,timestamp\n"
                     b"1,2,abc,10\n"          # rating not a number
                     b"1,2\n"                 # wrong column count
                     b",2,3,10\n"             # empty user
                     b"1,2,nan,10\n"          # not finite
                     b"1,2,3,yesterday\n"     # bad time
                     b"1\xff,2,3,10\n"        # not UTF-8
                     b"1,2,4,10\n")           # fine
    records = read_all(FileSource(path, format="csv"))
    results = [decode(r.value) for r in records]
    kinds = [r.kind if isinstance(r, Rejected) else "ok" for r in results]
    # a raw line such as ``1,2`` starts with a JSON number, so msgspec calls it a schema error
    assert kinds == ["schema", "schema", "schema", "schema", "schema", "encoding", "ok"]
    assert b'"value":"abc"' in records[0].value
    assert records[1].value == b"1,2"
    assert "`user_id` must be a non-empty string" in results[2].reason
    assert records[5].value == b"1\xff,2,3,10"
    assert results[6] == Event("bad.csv:6", "1", "2", "rating", 4.0, 10.0)


def test_movielens_wrong_column_count_keeps_raw_line(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "1\t2\t3\n1\t2\tx\t4\n")
    records = read_all(FileSource(path, format="movielens"))
    assert records[0].value == b"1\t2\t3"
    assert [decode(r.value).kind for r in records] == ["schema", "schema"]


def test_jsonl_passes_lines_through_unchanged(tmp_path: Path) -> None:
    good = b'{"event_id":"e","user_id":"u","item_id":"i","type":"view","value":1,"ts":3}'
    path = tmp_path / "ev.jsonl"
    path.write_bytes(good + b"\r\n\n" + b'{"event_id":"e2"\n' + b"\xff\xfe\n")
    records = read_all(FileSource(path, format="jsonl"))
    assert [r.value for r in records] == [good, b'{"event_id":"e2"', b"\xff\xfe"]
    assert [getattr(decode(r.value), "kind", "ok") for r in records] == [
        "ok", "malformed", "encoding"]
    assert count_rows(path, "jsonl") == 3


# -- order, batches, resume ------------------------------------------------------------------
def test_sort_by_time_is_stable_and_keeps_file_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "user,item,ts\na,x,30\nb,x,10\nc,x,bad\nd,x,20\ne,x,10\n")
    file_order = [getattr(e, "user_id", None) for e in decoded(path, format="csv")]
    assert file_order == ["a", "b", None, "d", "e"]
    records = read_all(FileSource(path, format="csv", sort_by_time=True))
    assert [r.offset for r in records] == [0, 1, 2, 3, 4]
    results = [decode(r.value) for r in records]
    assert [getattr(e, "event_id", None) for e in results[:4]] == [
        "t.csv:1", "t.csv:4", "t.csv:3", "t.csv:0"]
    assert isinstance(results[4], Rejected)  # unparseable time goes last


def test_sort_by_time_jsonl(tmp_path: Path) -> None:
    lines = [b'{"event_id":"a","user_id":"u","item_id":"i","type":"view","value":1,"ts":5}',
             b'garbage',
             b'{"event_id":"b","user_id":"u","item_id":"i","type":"view","value":1,'
             b'"ts":"1970-01-01T00:00:01Z"}']
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\n".join(lines))
    assert [r.value for r in read_all(FileSource(path, format="jsonl", sort_by_time=True))] == [
        lines[2], lines[0], lines[1]]


@pytest.mark.parametrize("sort_by_time", [False, True])
def test_resume_from_position_equals_uninterrupted_run(tmp_path: Path,
                                                       sort_by_time: bool) -> None:
    rows = "".join(f"{u}\t{u % 7}\t{u % 5 + 1}\t{(u * 37) % 11}\n" for u in range(23))
    path = write(tmp_path / "u.data", rows)
    full = read_all(FileSource(path, format="movielens", sort_by_time=sort_by_time))
    first = FileSource(path, format="movielens", sort_by_time=sort_by_time, batch_size=4)
    head = first.poll() + first.poll()
    first.commit({(str(path), 0): first.position})
    assert first.committed == {(str(path), 0): 8}
    first.close()
    assert first.exhausted and first.poll() == []
    rest = FileSource(path, format="movielens", sort_by_time=sort_by_time, start_offset=8)
    assert head + read_all(rest) == full


def test_batches_and_exhausted(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "".join(f"{i}\t1\t1\t{i}\n" for i in range(6)))
    src = FileSource(path, format="movielens", batch_size=3)
    assert isinstance(src, Source)
    assert not src.exhausted
    assert [r.offset for r in src.poll()] == [0, 1, 2]
    assert not src.exhausted
    assert [r.offset for r in src.poll()] == [3, 4, 5]
    assert src.exhausted
    assert src.poll() == []
    with FileSource(path, format="movielens", start_offset=10) as past_end:
        assert past_end.poll() == [] and past_end.exhausted


def test_count_rows_matches_records(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "userId,movieId\n1,2\n\n3,4\n5\n")
    assert count_rows(path, "csv") == len(read_all(FileSource(path, format="csv"))) == 3
    with pytest.raises(FileFormatError):
        count_rows(path, "xml")  # type: ignore[arg-type]


# -- broken rows are named by line number; --max-bad-rows ----------------------------------
def test_an_unterminated_quote_spoils_one_row_not_the_rest_of_the_file(tmp_path: Path,
                                                                        caplog) -> None:
    path = write(tmp_path / "r.csv", 'user,item,rating,ts\nu1,i1,4,1\nu2,"i2,5,2\n\nu3,i3,3,3\n'
                                     "u4,i4,2,4\n")
    src = FileSource(path, format="csv")
    got = [decode(r.value) for r in read_all(src)]
    assert [type(x).__name__ for x in got] == ["Event", "Rejected", "Event", "Event"]
    assert src.bad_rows == 1 and "r.csv: line 3: " in caplog.text


@pytest.mark.parametrize(("fmt", "text"), [
    ("csv", "user,item,rating\n" + "u,i,1\n" * 3 + "u,i\n" * 3),
    ("movielens", "1::2::3::4\n" * 3 + "1::2\n" * 3),
])
def test_more_bad_rows_than_the_limit_stop_the_reading_naming_the_line(tmp_path: Path, fmt,
                                                                       text) -> None:
    path = write(tmp_path / "d.txt", text)
    assert len(read_all(FileSource(path, format=fmt, max_bad_rows=3))) == 6
    assert len(read_all(FileSource(path, format=fmt, max_bad_rows=None))) == 6
    line = 7 if fmt == "csv" else 6
    with pytest.raises(FileFormatError, match=rf"d.txt: line {line}: expected .* fields.*"
                                              r"more than --max-bad-rows 2"):
        read_all(FileSource(path, format=fmt, max_bad_rows=2))
