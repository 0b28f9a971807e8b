import json

from typer.testing import CliRunner

from lifelong.cli import app
from stream.synthetic import SyntheticStream, write

runner = CliRunner()


def test_evaluate_lifelong_reports_blend_models_and_bwt(tmp_path):
    data = tmp_path / "ratings.tsv"
    write(SyntheticStream(n_users=300, n_items=300, n_events=12_000, drift_at=(6000,), seed=3),
          data, "movielens")
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["evaluate", "-d", str(data), "--model", "lifelong",
                                 "--clip", "1,5", "--round-every", "3000", "--device", "cpu",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    # a round every 3,000 events (evaluation's default: no growth): 3k, 6k, 9k, 12k
    assert report["model"] == "lifelong" and report["rounds"] == 4
    assert set(report["models"]) == {"online", "deep"}
    assert report["models"]["deep"]["events"] == 12_000
    assert report["bwt"] == report["bwt"]  # a number, not NaN
    # the blend is never much worse than the better of its two parts
    best = min(m["rmse"] for m in report["models"].values())
    assert report["rmse"] <= 1.03 * best
    assert report["finetune_samples_per_second"] > 0 and report["device"] == "cpu"


def test_experiment_forgetting_prints_the_table_and_passes(tmp_path):
    out = tmp_path / "forgetting.json"
    result = runner.invoke(app, ["experiment", "forgetting", "--events", "30000",
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "no_replay" in result.output and "PASS" in result.output
    assert json.loads(out.read_text())["pass"] is True
