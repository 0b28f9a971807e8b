"""``evaluate`` without the JSON round trip: the same report, field by field."""

from __future__ import annotations

import re
from pathlib import Path

from lifelong.commands import evaluate_file
from stream.synthetic import SyntheticStream, write

TIMING = {"elapsed_seconds", "events_per_second", "created"}


def test_the_report_is_identical_with_broken_rows(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    write(SyntheticStream(n_events=3000, seed=3), path, "csv")
    lines = path.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    broken = ["u1,i1,abc,1700000000", " ,i2,3,1700000001", "u3,i3,3", 'u4,"i4,3,1',
              "u5,i5,3,not-a-time", "u6,i6,nan,1700000002", "u7,i7,99,1700000003",
              "u8,i8,4,4102444800", rows[10]]  # off the scale, in the future, a duplicate row
    for i, row in enumerate(broken):
        rows.insert(100 + 250 * i, row)
    path.write_text("\n".join([header, *rows]) + "\n")
    for sort in (False, True):
        new = evaluate_file(path, fmt="csv", sort_by_time=sort, series_every=500)
        old = evaluate_file(path, fmt="csv", sort_by_time=sort, series_every=500, decoded=False)
        assert new["invalid"] >= 6 and new["quarantined"] >= 1
        for key in sorted(set(new) | set(old) - TIMING):
            if key == "series":
                strip = [{k: v for k, v in p.items() if "second" not in k and k != "elapsed"}
                         for p in new[key]], \
                    [{k: v for k, v in p.items() if "second" not in k and k != "elapsed"}
                     for p in old[key]]
                assert strip[0] == strip[1], key
                continue
            if key == "invalid_examples":  # a future ts is reported against the wall clock
                assert [re.sub(r"now \(\d+\)", "now", e["reason"]) for e in new[key]] == \
                    [re.sub(r"now \(\d+\)", "now", e["reason"]) for e in old[key]]
                assert [e["offset"] for e in new[key]] == [e["offset"] for e in old[key]]
            elif key not in TIMING:
                assert new[key] == old[key], key


def test_evaluate_without_a_report_does_not_import_matplotlib(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "events.csv"
    write(SyntheticStream(n_events=200, seed=3), path, "csv")
    code = ("import sys; from pathlib import Path; from lifelong.commands import evaluate_file; "
            f"evaluate_file(Path({str(path)!r}), fmt='csv'); "
            "print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=120)
    assert out.stdout.strip() == "[]"
