"""The fine-tune worker for ``task=ranking``: weighted positives, ranking gate, deep-ranking."""

from __future__ import annotations

import pytest

from consumers.deep_publisher import DeepPublisher
from consumers.finetune_worker import FineTuneWorker
from learning.finetune import FineTuner
from learning.rank_deep import DeepRanker, RankingTracker
from learning.replay import ReplayBuffer
from learning.task import RankingTask
from model_store import Registry
from model_store.recommend import TopK
from stream.source import ListSource
from stream.synthetic_implicit import ImplicitStream

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODEL = "reco-deep"


def run(n: int = 1500, **kw):
    src = ListSource(list(ImplicitStream(n_users=60, n_items=120, n_events=n, seed=3).raw()),
                     batch_size=250)
    rec = DeepRanker(n_factors=8, seed=0)
    tuner = FineTuner(rec, device="cpu", batch_size=128, lr=0.05, epochs_per_round=2,
                      loss="softmax", n_negatives=16)
    registry = Registry.from_url("memory://", signer=None)
    worker = FineTuneWorker(src, tuner, ReplayBuffer(5000, recent_window=500, seed=0),
                            DeepPublisher(registry, MODEL), round_every_events=500,
                            round_every_seconds=1e9, min_fresh=100,
                            tracker=RankingTracker(k=10), weight=RankingTask().weight, **kw)
    return worker, worker.run(), registry, rec


def test_ranking_rounds_publish_deep_ranking_versions_gated_on_ndcg() -> None:
    _, stats, registry, rec = run()
    assert len(stats.rounds) >= 2 and stats.rounds[0].promoted and stats.rounds[0].ranking
    versions = registry.versions(MODEL)
    assert {v.format for v in versions} == {"deep-ranking"}
    last = versions[-1]
    assert last.tags["task"] == "ranking"
    assert 0.0 <= last.metrics["recent_ndcg@10"] <= 1.0
    assert last.metrics["recent_hr@10"] >= last.metrics["recent_ndcg@10"]
    later = stats.rounds[-1]
    assert later.production_version is not None  # compared against production on NDCG
    assert "recent NDCG@10" in later.summary()
    _, served = registry.load(MODEL, "production")
    assert isinstance(served, DeepRanker)
    user = rec.users.id_of(0)
    top = TopK().recommend(served, user, 10)
    seen = {served.item_ids()[r] for r in served.seen_items(user)}
    assert len(top) == 10 and not seen & {item for item, _ in top}


def test_ranking_trains_on_type_weights_not_values() -> None:
    weights: list[float] = []
    worker, _, _, _ = run(600)
    weight = RankingTask().weight
    for ev in ImplicitStream(n_users=60, n_items=120, n_events=50, seed=3):
        weights.append(weight(ev.type))
    assert set(weights) <= {1.0, 2.0, 3.0, 4.0}
    assert worker.runner.buffer.seen > 0
    assert set(worker.runner.buffer.sample(200)[2].tolist()) <= {1.0, 2.0, 3.0, 4.0}


def test_a_rating_model_is_not_a_ranking_warm_start() -> None:
    from learning.torch_models import DeepRecommender

    assert not isinstance(DeepRecommender(n_factors=2), DeepRanker)
    with pytest.raises(ValueError):
        DeepRanker(n_factors=2, max_seen=0)
