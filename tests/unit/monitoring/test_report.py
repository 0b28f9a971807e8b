"""The run report renders from a short run: every PNG exists, is non-empty and referenced
by a relative path from index.html; report.json sources are read as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from lifelong.commands import evaluate_file
from lifelong.config import ConfigError
from lifelong.report_cli import write_report
from monitoring.report import RunData, render
from monitoring.report_sources import SeriesRecorder, from_report, load_run
from stream.synthetic import SyntheticStream, write


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    data = folder / "ratings.tsv"
    write(SyntheticStream(n_events=6000, drift_at=(3000,), seed=4), data, "movielens")
    report = evaluate_file(data, fmt="movielens", model="BiasedMF", clip=(1.0, 5.0),
                           series_every=1000)
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def images(page: Path) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page.read_text())


def test_evaluate_series_has_a_row_every_n_events_and_the_alarms(short_run):
    report = json.loads((short_run / "report.json").read_text())
    events = [row["events"] for row in report["series"]]
    assert events == [float(n) for n in range(1000, 6001, 1000)]
    assert {"rmse", "rolling_rmse", "seconds", "psi_value"} <= set(report["series"][-1])
    assert report["drift_alarms"] and 3000 <= report["drift_alarms"][0] < 3500
    assert all({"at", "signal", "detector"} <= set(a) for a in report["input_drift_alarms"])


def test_the_report_renders_every_part_with_data(short_run, tmp_path):
    page = write_report(short_run / "report.json", tmp_path / "out")
    srcs = images(page)
    assert srcs == ["run0-quality.png", "run0-drift.png", "run0-throughput.png"]
    for src in srcs:
        png = page.parent / src
        assert png.stat().st_size > 10_000
        pixels = imread(png)
        assert pixels.shape[0] > 200 and np.std(pixels) > 0.01  # not a blank image
    assert "file:" not in page.read_text() and "/" not in "".join(srcs)  # relative paths


def test_a_folder_of_reports_with_forgetting_and_ranking(tmp_path):
    rec = SeriesRecorder(every=100)
    for n in range(100, 1001, 100):
        rec.record(n, {"rolling_rmse": 1.0 - n / 5000, "ndcg_at_10": n / 2000}, seconds=n / 100)
    run_dir = tmp_path / "run"
    (run_dir / "b").mkdir(parents=True)
    (run_dir / "a.json").write_text(json.dumps({
        "model": "lifelong", "events": 1000, "series": rec.rows, "drift_alarms": [400],
        "forgetting_matrix": [[0.9, None], [0.95, 0.8], [1.0, 0.85]],
        "version_marks": [{"at": 500, "version": 2}]}))
    (run_dir / "b" / "report.json").write_text(json.dumps({
        "task": "ranking", "model": "rank", "events": 1000, "series": rec.rows}))
    (run_dir / "notes.json").write_text("[1, 2]")  # not a report: skipped
    runs = load_run(run_dir)
    assert [r.title for r in runs] == ["a.json: lifelong", "report.json: rank"]
    page = render(runs, tmp_path / "out")
    assert images(page) == ["run0-quality.png", "run0-forgetting.png", "run0-throughput.png",
                            "run0-ranking.png", "run1-quality.png", "run1-throughput.png",
                            "run1-ranking.png"]
    assert runs[0].version_marks == [(500.0, "v2")]
    assert all((page.parent / src).stat().st_size > 0 for src in images(page))


def test_report_fields_that_are_not_series_are_summarised(short_run):
    run = from_report(json.loads((short_run / "report.json").read_text()))
    assert run.summary["model"] == "BiasedMF" and "series" not in run.summary
    assert set(run.quality) == {"RMSE", "MAE", "rolling RMSE", "rolling MAE"}


def test_nothing_to_draw_is_an_error_that_names_the_path(tmp_path):
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"empty\.json"):
        write_report(tmp_path / "empty.json", tmp_path / "out")
    with pytest.raises(ConfigError, match="together"):
        write_report(None, tmp_path / "out", prometheus="http://127.0.0.1:1")


def test_a_run_without_series_says_so(tmp_path):
    page = render([RunData("bare")], tmp_path)
    assert "No time series" in page.read_text() and images(page) == []
