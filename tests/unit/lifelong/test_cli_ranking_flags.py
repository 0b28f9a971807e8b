"""The ranking flags of `learn` and `finetune` show their effective defaults in --help."""

from __future__ import annotations

from typer.testing import CliRunner

from lifelong.cli import app


def _help(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())


def test_learn_shows_the_impression_join_flags_with_defaults() -> None:
    text = _help("learn")
    assert "--impressions-topic" in text and "env LIFELONG_IMPRESSIONS_TOPIC]" in text
    assert "[default: 1800.0; env LIFELONG_IMPRESSION_WINDOW]" in text
    assert "[default: 100000; env LIFELONG_MAX_IMPRESSIONS]" in text


def test_finetune_shows_the_ranking_flags_with_defaults() -> None:
    text = _help("finetune")
    assert "[default: rating; env LIFELONG_TASK]" in text
    assert "[default: softmax; env LIFELONG_FINETUNE_LOSS]" in text
    assert "[default: 64; env LIFELONG_NEGATIVES]" in text
    assert "[default: 50000; env LIFELONG_ROUND_EVERY_EVENTS]" in text
