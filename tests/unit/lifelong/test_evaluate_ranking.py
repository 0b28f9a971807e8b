import json

from typer.testing import CliRunner

from lifelong.cli import app
from lifelong.commands import evaluate_file
from stream.synthetic import SyntheticStream, write

runner = CliRunner()


def test_evaluate_task_ranking_writes_the_ranking_report(tmp_path):
    data = tmp_path / "clicks.csv"
    write(SyntheticStream(n_events=1500, seed=2), data, "csv")
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["evaluate", "--task", "ranking", "--k", "10", "--data",
                                 str(data), "--format", "csv", "--sort-by-time", "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    for key in ("task", "events", "evaluated", "cold_users", "hr@10", "ndcg@10", "coverage@10",
                "intra_list_diversity", "novelty", "events_per_second", "models"):
        assert key in report, key
    assert report["task"] == "ranking" and report["model"] == "rerank"
    assert report["events"] == 1500 and 0 < report["evaluated"] < 1500
    assert 0.0 < report["hr@10"] <= 1.0 and 0.0 <= report["ndcg@10"] <= report["hr@10"]
    assert set(report["models"]) == {"popularity", "co_occurrence", "sequence"}
    assert "hr@10" in result.output


def test_the_rating_path_is_unchanged_and_ranking_models_are_chosen_by_name(tmp_path):
    data = tmp_path / "r.csv"
    write(SyntheticStream(n_events=300, seed=3), data, "csv")
    rating = evaluate_file(data, fmt="csv", model="Baseline")
    assert rating["task"] == "rating" and rating["rmse"] > 0 and "hr@10" not in rating
    bpr = evaluate_file(data, fmt="csv", task="ranking", model="bpr", k=5)
    assert bpr["model"] == "bpr" and "hr@5" in bpr and bpr["intra_list_diversity"] is not None


def test_help_shows_the_effective_defaults():
    result = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # the help wraps at 80 columns
    assert "default: rating" in text and "default: rerank" in text
