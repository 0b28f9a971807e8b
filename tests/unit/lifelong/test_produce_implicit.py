"""`lifelong produce --synthetic --implicit --output FILE`: a click stream for evaluate."""

from __future__ import annotations

import json
from collections import Counter

from typer.testing import CliRunner

from lifelong.cli import app
from stream.schema import Event, decode
from stream.synthetic_implicit import ImplicitStream

runner = CliRunner()


def test_produce_implicit_to_a_file_then_evaluate_reads_it(tmp_path):
    path = tmp_path / "clicks.jsonl"
    result = runner.invoke(app, ["produce", "--synthetic", "--implicit", "--events", "1200",
                                 "--invalid-rate", "0.02", "--seed", "4",
                                 "--output", str(path)])
    assert result.exit_code == 0, result.output
    assert f"wrote 1200 records to file '{path}'" in result.output
    decoded = [decode(line) for line in path.read_bytes().splitlines()]
    events = [e for e in decoded if isinstance(e, Event)]
    assert len(decoded) == 1200 and 5 < 1200 - len(events) < 60
    assert events == [e for e in ImplicitStream(n_events=1200, drift_at=(600,), seed=4)
                      if e.event_id in {x.event_id for x in events}]
    assert set(Counter(e.type for e in events)) == {"view", "click", "cart", "purchase"}
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["evaluate", "--data", str(path), "--format", "jsonl",
                                 "--model", "Baseline", "--output", str(report)])
    assert result.exit_code == 0, result.output
    got = json.loads(report.read_text())
    assert got["events"] == 1200 and got["invalid"] == 1200 - len(events)


def test_output_and_implicit_need_synthetic(tmp_path):
    data = tmp_path / "x.jsonl"
    data.write_text("")
    for flag in (["--implicit"], ["--output", str(tmp_path / "y.jsonl")]):
        result = runner.invoke(app, ["produce", *flag, str(data)])
        assert result.exit_code == 2 and "add --synthetic" in result.output
