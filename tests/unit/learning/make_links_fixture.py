"""Write ``data/rank_links_v5.pkl``: checkpoints made by the round-5 link storage (dict of _Row).

Run once with the round-5 code (commit 2a57caa) on the PYTHONPATH; the test
``test_rank_links.py`` loads the file with today's code and checks that learning goes on to
the very figures the round-5 code reached (stored beside the checkpoints).

    PYTHONPATH=<round-5 checkout> python tests/unit/learning/make_links_fixture.py OUT
"""

from __future__ import annotations

import pickle
import sys

import numpy as np

from learning.ranking_learner import RankingLearner
from stream.schema import Event


def events(n: int, seed: int = 5) -> list[Event]:
    """A small stream with repeat users, bursts and a catalogue that grows."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        user = f"u{int(rng.zipf(1.6)) % 60}"
        item = f"i{int(rng.zipf(1.4)) % (20 + i // 10)}"
        out.append(Event(f"e{i}", user, item, "click", 1.0, float(i * 37 + rng.integers(60))))
    return out


def main(out: str) -> None:
    stream = events(1200)
    fixture: dict[str, object] = {}
    for model in ("rerank", "blend", "co-occurrence"):
        learner = RankingLearner(model)
        for event in stream[:600]:
            learner.learn_one(event)
        snapshot = pickle.dumps(learner)
        losses = [learner.learn_one(event) for event in stream[600:]]
        users = sorted({e.user_id for e in stream})[:20]
        fixture[model] = {"snapshot": snapshot, "losses": losses,
                          "scores": {u: learner.score_items(u) for u in users},
                          "score": learner.score()}
    with open(out, "wb") as f:
        pickle.dump(fixture, f)


if __name__ == "__main__":
    main(sys.argv[1])
