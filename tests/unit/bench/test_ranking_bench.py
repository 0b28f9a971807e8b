"""bench.ranking's bare baseline follows the project's protocol (same events ranked, same HR)."""

from __future__ import annotations

import numpy as np

from bench.ranking import bare_decayed_popularity
from lifelong.commands import evaluate_file


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
