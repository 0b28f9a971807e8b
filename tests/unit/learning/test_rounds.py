"""The one round: evaluation (LifelongLearner) and the fine-tune worker run the same rounds."""

from __future__ import annotations

import math
import time

import pytest

from consumers.deep_publisher import DeepPublisher
from consumers.finetune_worker import FineTuneWorker
from consumers.worker import LearnerWorker
from learning.finetune import FineTuner
from learning.forgetting import ForgettingTracker
from learning.gate import Gate
from learning.lifelong import LifelongLearner
from learning.replay import ReplayBuffer
from learning.rounds import HoldBack, MemoryDeepStore, RoundBatch, run_round
from learning.torch_models import DeepRecommender
from model_store import Registry
from stream.source import ListDeadLetters, ListSource
from stream.synthetic import SyntheticStream


def tuner(kind: str, seed: int) -> FineTuner:
    rec = DeepRecommender(kind, n_factors=6, hidden=8, out_dim=6, clip=(1.0, 5.0), seed=seed)
    return FineTuner(rec, device="cpu", batch_size=128, lr=0.03, epochs_per_round=2, seed=seed)


def buffer(seed: int) -> ReplayBuffer:
    return ReplayBuffer(3000, recent_window=300, seed=seed)


class RoundsOnly(ListSource):
    """Hands out a batch only while no round trains, so rounds start at known points."""

    worker: FineTuneWorker | None = None

    def poll(self, timeout: float = 1.0):
        deadline = time.monotonic() + 60
        while self.worker is not None and self.worker.round_running \
                and time.monotonic() < deadline:
            time.sleep(0.002)
        return super().poll(timeout)


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize(("kind", "round_every", "share", "seed"), [
    ("mf", 400, 0.1, 1), ("mf", 500, 0.2, 2), ("two_tower", 600, 0.1, 3)])
def test_evaluation_and_the_finetune_worker_run_the_same_rounds(kind, round_every, share, seed):
    raw = list(SyntheticStream(n_users=60, n_items=80, n_events=3000, drift_at=(1500,),
                               seed=seed).raw())
    gate = Gate(max_regression=0.0, max_old_regression=0.0)  # strict: some rounds fail it
    learner = LifelongLearner(clip=(1.0, 5.0), seed=seed, finetuner=tuner(kind, seed),
                              buffer=buffer(seed), gate=gate, round_every=round_every,
                              holdout_share=share)
    LearnerWorker(ListSource(raw, batch_size=100), learner, ListDeadLetters()).run()

    src = RoundsOnly(raw, batch_size=100)
    worker = FineTuneWorker(src, tuner(kind, seed), buffer(seed), DeepPublisher(
        Registry.from_url("memory://", signer=None), "reco-deep"), gate=gate,
        round_every_events=round_every, round_every_seconds=1e9, holdout_share=share,
        min_fresh=1)
    src.worker = worker
    stats = worker.run(final_round=False)

    evaluated, produced = learner.rounds, stats.rounds
    assert len(evaluated) == len(produced) == 3000 // round_every
    for e, p in zip(evaluated, produced, strict=True):
        assert (e.fresh, e.held_out) == (p.fresh, p.held_out)
        assert e.decision.promote == p.promoted and e.decision.reason == p.reason
        assert e.report.loss == p.report.loss
        assert same(e.candidate.recent_rmse, p.recent_rmse)
        assert same(e.candidate.old_rmse, p.old_rmse) and same(e.candidate.bwt, p.bwt)
        e_prod = e.production.recent_rmse if e.production else math.nan
        assert same(e_prod, p.production_recent_rmse)
    assert produced[0].promoted  # no production yet
    assert {p.promoted for p in produced} == {True, False}  # the strict gate bites too
    # what evaluation serves is what the worker's production alias points at
    assert learner.deep_version == worker.runner.publisher.registry.get_alias(
        "reco-deep", "production")


def test_run_round_gates_against_production_and_tracks_slices():
    events = list(SyntheticStream(n_users=40, n_items=40, n_events=1200, seed=5))
    ft, store, tracker, split = tuner("mf", 0), MemoryDeepStore(), ForgettingTracker(), \
        HoldBack(5)
    outcomes = []
    for start in range(0, 1200, 400):
        batch = RoundBatch()
        for ev in events[start : start + 400]:
            batch.add(ev, split.hold())
        out = run_round(ft, None, batch, tracker, Gate(), store.production())
        number = store.publish(ft.recommender)
        if out.decision.promote:
            store.promote(number)
        outcomes.append(out)
    assert outcomes[0].production is None and outcomes[0].decision.reason == "no production model"
    assert all(o.production is not None for o in outcomes[1:])
    assert [(o.fresh, o.held_out) for o in outcomes] == [(320, 80)] * 3
    assert len(tracker) == 3 and tracker.matrix.shape == (3, 3)
    assert math.isfinite(tracker.bwt())
    with pytest.raises(ValueError, match="not the latest"):
        store.promote(1)
