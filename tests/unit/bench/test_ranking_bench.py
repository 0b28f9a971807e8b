"""bench.ranking's bare baseline follows the project's protocol (same events ranked, same HR)."""

from __future__ import annotations

import numpy as np

from bench import ranking
from bench.ranking import bare_decayed_popularity
from lifelong.commands import evaluate_file


def _ratings(tmp_path, n=3000):
    rng = np.random.default_rng(5)
    items = rng.zipf(1.4, size=n) % 60
    lines = [f"u{int(rng.integers(0, 80))}::i{int(item)}::{int(rng.integers(1, 6))}::"
             f"{10_000 + 7 * i}" for i, item in enumerate(items)]
    path = tmp_path / "ratings.dat"
    path.write_text("\n".join(reversed(lines)) + "\n")
    return path


def test_quality_reports_the_best_models_ratio_per_seed(tmp_path, monkeypatch, capsys):
    path = _ratings(tmp_path, 1500)
    monkeypatch.setattr(ranking, "BASELINES", ("decayed-popularity",))
    monkeypatch.setattr(ranking, "MODELS", ("bpr-pop",))  # seeded: the seeds differ
    worst = ranking.quality(path, "movielens", "tiny", reference=False, model_seeds=(0, 1))
    base = evaluate_file(path, fmt="movielens", model="decayed-popularity",
                         sort_by_time=True, task="ranking")
    got = []
    for seed in (0, 1, 42):
        r = evaluate_file(path, fmt="movielens", model="bpr-pop", sort_by_time=True,
                          task="ranking", seed=seed)
        got += [r["hr@10"] / base["hr@10"], r["ndcg@10"] / base["ndcg@10"]]
    out = capsys.readouterr().out
    assert abs(worst - min(got)) < 1e-12 and len(set(got)) > 2
    assert "bpr-pop seed 0:" in out and "seed 1:" in out and "over seeds [0, 1, 42]" in out


def test_bare_decayed_popularity_matches_the_project_baseline(tmp_path):
    rng = np.random.default_rng(5)
    items = rng.zipf(1.4, size=3000) % 60
    lines = [f"u{int(rng.integers(0, 80))}::i{int(item)}::{int(rng.integers(1, 6))}::"
             f"{10_000 + 7 * i}" for i, item in enumerate(items)]
    path = tmp_path / "ratings.dat"
    path.write_text("\n".join(reversed(lines)) + "\n")  # not time-sorted: both must sort
    events, ranked, hr, ndcg = bare_decayed_popularity(path)
    report = evaluate_file(path, fmt="movielens", model="decayed-popularity",
                           sort_by_time=True, task="ranking")
    assert (events, ranked) == (report["events"], report["evaluated"]) and ranked > 500
    assert abs(hr - report["hr@10"]) < 1e-9 and abs(ndcg - report["ndcg@10"]) < 1e-9
