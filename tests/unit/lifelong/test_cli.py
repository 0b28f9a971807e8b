import json

from typer.testing import CliRunner

from lifelong.cli import app
from stream.synthetic import SyntheticStream, write

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("services", "produce", "learn", "evaluate", "models", "demo"):
        assert command in result.output


def test_evaluate_csv_writes_the_report(tmp_path):
    data = tmp_path / "ratings.csv"
    write(SyntheticStream(n_events=500, drift_at=(250,), seed=1), data, "csv")
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["evaluate", "--data", str(data), "--format", "csv",
                                 "--model", "FunkMF", "--output", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert {"events", "invalid", "rmse", "mae", "events_per_second", "model"} <= set(report)
    assert report["events"] == 500 and report["model"] == "FunkMF"


def test_sort_by_time_changes_order_not_counts(tmp_path):
    data = tmp_path / "r.csv"
    data.write_text("userId,movieId,rating,timestamp\nu1,i1,4,30\nu2,i1,2,10\nu1,i2,5,20\n")
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["evaluate", "-d", str(data), "-f", "csv", "--sort-by-time",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["events"] == 3


def test_bad_input_is_one_clear_line_and_exit_code_2(tmp_path):
    data = tmp_path / "r.csv"
    data.write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["evaluate", "-d", str(data), "-f", "csv"])
    assert result.exit_code == 2
    assert "no user column" in result.output or "user" in result.output
    result = runner.invoke(app, ["evaluate", "-d", str(data), "-f", "csv", "--clip", "5,1"])
    assert result.exit_code == 2


def test_unknown_model_kind_is_refused(tmp_path):
    data = tmp_path / "r.tsv"
    data.write_text("1\t2\t3\t4\n")
    result = runner.invoke(app, ["evaluate", "-d", str(data), "--model", "Nope"])
    assert result.exit_code == 2
    assert 'unknown model "Nope"' in result.output
