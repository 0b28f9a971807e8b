"""A ranking learner published as a version: ranking figures in the metadata, and a resume
from the stored checkpoint that continues exactly like an uninterrupted run."""

from __future__ import annotations

import math

from consumers.checkpoint import Checkpoint
from consumers.publisher import RegistryPublisher, score_figures
from learning.task import get_task
from model_store import Registry
from model_store.signing import Signer
from stream.synthetic_implicit import ImplicitStream


def test_published_ranking_version_carries_ranking_figures_and_resumes_exactly():
    events = list(ImplicitStream(n_events=1500, drift_at=(700,), seed=5))
    task = get_task("ranking")
    whole = task.make_learner("blend")
    for event in events:
        whole.learn_one(event)

    first = task.make_learner("blend")
    for event in events[:800]:
        first.learn_one(event)
    registry = Registry.from_url("memory://", signer=Signer(b"k" * 32))
    publisher = RegistryPublisher(registry, "rank")
    number = publisher.publish(Checkpoint(first, b"dedup", {}), {("clicks", 0): 800})
    version = registry.get("rank", number)
    assert version.metrics["evaluated"] == first.score().n > 0
    assert version.metrics["hr@10"] == first.score().hr
    assert version.metrics["rolling_ndcg@10"] == first.score().rolling_ndcg
    assert "rmse" not in version.metrics and version.tags["model_kind"] == "blend"

    _, obj = registry.load_object("rank", "latest")
    restored = Checkpoint.of(obj)
    assert type(restored.learner) is type(first) and restored.dedup == b"dedup"
    resumed = restored.learner
    for event in events[800:]:
        resumed.learn_one(event)
    assert resumed.score() == whole.score()
    assert resumed.score_items("u3").tolist() == whole.score_items("u3").tolist()


def test_rating_scores_keep_their_figures():
    learner = get_task("rating").make_learner("Baseline")
    figures = score_figures(learner.score())
    assert set(figures) == {"rmse", "mae", "rolling_rmse", "rolling_mae"}
    assert all(math.isnan(v) or v >= 0 for v in figures.values())
