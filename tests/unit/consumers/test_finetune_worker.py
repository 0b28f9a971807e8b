"""The fine-tune worker on in-memory sources and the in-memory model store."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from prometheus_client import CollectorRegistry

from consumers.alarms import StoreAlarms
from consumers.deep_publisher import DeepPublisher
from consumers.finetune_worker import FineTuneWorker
from learning import weights
from learning.finetune import FineTuner
from learning.replay import ReplayBuffer
from learning.torch_models import DeepRecommender
from model_store import Registry
from monitoring.metrics import FineTuneMetrics
from stream.source import ListSource
from stream.synthetic import SyntheticStream

MODEL = "reco-deep"


def raw(n: int, seed: int = 1, **kw) -> list[bytes]:
    return list(SyntheticStream(n_users=60, n_items=80, n_events=n, seed=seed,
                                drift_at=(n // 2,), **kw).raw())


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SyncSource(ListSource):
    """Hands out a batch only while no round trains: rounds start at known points."""

    worker: FineTuneWorker | None = None

    def poll(self, timeout: float = 1.0):
        deadline = time.monotonic() + 30
        while self.worker is not None and self.worker.round_running \
                and time.monotonic() < deadline:
            time.sleep(0.002)
        return super().poll(timeout)


class ScriptedSource:
    """Returns the scripted batches one per poll (``[]`` = nothing arrived); then ends."""

    def __init__(self, script: list[list[bytes]]) -> None:
        self.script = list(script)
        self.offset = 0
        self.committed: dict[tuple[str, int], int] = {}

    def poll(self, timeout: float = 1.0):
        from stream.source import Record

        values = self.script.pop(0) if self.script else []
        out = [Record(v, "s", 0, self.offset + i) for i, v in enumerate(values)]
        self.offset += len(values)
        return out

    def commit(self, positions) -> None:
        self.committed.update(positions)

    @property
    def exhausted(self) -> bool:
        return not self.script

    def close(self) -> None:
        pass


def tuner(seed: int = 0, cls: type[FineTuner] = FineTuner, **kw) -> FineTuner:
    rec = DeepRecommender("mf", n_factors=8, clip=(1.0, 5.0), seed=seed)
    return cls(rec, device="cpu", batch_size=128, lr=0.03, epochs_per_round=2, seed=seed, **kw)


def make(source, registry: Registry | None = None, *, finetuner: FineTuner | None = None,
         publisher: DeepPublisher | None = None, **kw):
    registry = registry or Registry.from_url("memory://", signer=None)
    metrics_registry = CollectorRegistry()
    kw.setdefault("min_fresh", 100)
    kw.setdefault("round_every_seconds", 1e9)
    worker = FineTuneWorker(
        source, finetuner or tuner(), ReplayBuffer(5000, recent_window=500, seed=0),
        publisher or DeepPublisher(registry, MODEL), metrics=FineTuneMetrics(
            metrics_registry, model=MODEL), **kw)
    if isinstance(source, SyncSource):
        source.worker = worker
    return worker, registry, metrics_registry


def sample(metrics: CollectorRegistry, name: str, **labels: str) -> float | None:
    return metrics.get_sample_value(name, {"model": MODEL, **labels})


def test_rounds_by_event_count_publish_versions_and_commit_what_they_cover():
    src = SyncSource(raw(1000), batch_size=100)
    worker, registry, metrics = make(src, round_every_events=400)
    stats = worker.run()
    assert [r.trigger for r in stats.rounds] == ["events", "events", "final"]
    assert [r.offsets for r in stats.rounds] == [{"memory:0": 400}, {"memory:0": 800},
                                                 {"memory:0": 1000}]
    assert src.committed == {("memory", 0): 1000}
    assert stats.valid == 1000 and stats.held_out == 100  # every 10th held back
    assert sum(r.fresh + r.held_out for r in stats.rounds) == 1000
    versions = registry.versions(MODEL)
    assert [v.number for v in versions] == [1, 2, 3] == stats.versions
    assert [v.parent for v in versions] == [None, 1, 2]
    last = versions[-1]
    assert last.format == "safetensors" and last.offsets == {"memory:0": 1000}
    assert {"recent_rmse", "old_rmse", "bwt", "loss", "samples_per_second"} <= set(last.metrics)
    assert last.tags["learner"] == "finetune" and last.tags["trigger"] == "final"
    assert last.metrics["old_rmse"] > 0 and last.extra["old_slices"] == 2
    assert registry.get_alias(MODEL, "candidate") == 3
    rec = weights.load(registry.read_blob(MODEL, 3))
    assert 1.0 <= rec.predict_one("u1", "i1") <= 5.0
    assert sample(metrics, "lifelong_finetune_rounds_total", trigger="events") == 2
    assert sample(metrics, "lifelong_finetune_round_duration_seconds_count") == 3
    assert sample(metrics, "lifelong_finetune_events_consumed_total") == 1000
    assert sample(metrics, "lifelong_replay_buffer_samples") == len(worker.runner.buffer) > 900
    assert sample(metrics, "lifelong_finetune_samples_per_second") > 0
    assert sample(metrics, "lifelong_finetune_recent_rmse") == pytest.approx(
        stats.rounds[-1].recent_rmse)
    assert sample(metrics, "lifelong_finetune_bwt") == pytest.approx(stats.rounds[-1].bwt)
    assert sample(metrics, "lifelong_finetune_version") == 3


def test_round_by_time_with_an_injected_clock():
    clock = FakeClock()
    src = ScriptedSource([raw(300), [], [], []])
    worker, _, _ = make(src, round_every_events=10_000, round_every_seconds=600, clock=clock)

    def tick(stats):
        clock.now += 400

    stats = worker.run(on_batch=tick)
    assert [r.trigger for r in stats.rounds] == ["time"]
    assert src.committed == {("s", 0): 300}


def test_drift_alarm_from_the_store_starts_a_round_once_enough_events_are_pending():
    registry = Registry.from_url("memory://", signer=None)
    events = raw(400)
    src = ScriptedSource([events[:50], [], events[50:], []])
    with StoreAlarms(registry, ["reco"]) as alarms:
        worker, _, metrics = make(src, registry, round_every_events=10_000, alarms=alarms)

        def raise_once(stats):
            if stats.polls == 1:
                registry.alarm("reco", detail={"events": 50}, actor="online")
                deadline = time.monotonic() + 5
                while not len(alarms) and time.monotonic() < deadline:
                    time.sleep(0.005)

        stats = worker.run(on_batch=raise_once)
    assert stats.alarms == 1
    # the alarm came with 45 fresh events (< min_fresh): the round waited for more
    assert [(r.trigger, r.fresh + r.held_out) for r in stats.rounds] == [("drift", 400)]
    assert sample(metrics, "lifelong_finetune_drift_triggered_rounds_total") == 1
    assert sample(metrics, "lifelong_finetune_rounds_total", trigger="drift") == 1


class SlowTuner(FineTuner):
    threads: list[int]
    consumed_at_end: list[int]
    worker: FineTuneWorker

    def round(self, *args, **kwargs):
        self.threads.append(threading.get_ident())
        time.sleep(0.3)
        report = super().round(*args, **kwargs)
        self.consumed_at_end.append(self.worker.stats.consumed)
        return report


def test_training_runs_off_the_poll_thread_and_polling_continues():
    slow = tuner(cls=SlowTuner)
    slow.threads, slow.consumed_at_end = [], []
    src = ListSource(raw(1000), batch_size=50)
    worker, _, _ = make(src, finetuner=slow, round_every_events=200)
    slow.worker = worker
    stats = worker.run()
    assert threading.get_ident() not in slow.threads
    assert stats.polls_during_rounds > 0
    # all 1000 records were read while the first round (of 200) was still training
    assert slow.consumed_at_end[0] == 1000
    assert [r.trigger for r in stats.rounds] == ["events", "final"]
    assert stats.rounds[0].fresh + stats.rounds[0].held_out == 200
    assert src.committed == {("memory", 0): 1000}


def test_stop_finishes_the_running_round_commits_and_skips_the_final_round():
    slow = tuner(cls=SlowTuner)
    slow.threads, slow.consumed_at_end = [], []
    stop = threading.Event()
    src = ListSource(raw(1000), batch_size=50)
    worker, _, _ = make(src, finetuner=slow, round_every_events=200)
    slow.worker = worker

    def stop_when_training(stats):
        if worker.round_running:
            stop.set()

    stats = worker.run(stop=stop, on_batch=stop_when_training)
    assert [r.trigger for r in stats.rounds] == ["events"]
    assert src.committed == {("memory", 0): 200}


class SabotagedTuner(FineTuner):
    def round(self, *args, **kwargs):
        report = super().round(*args, **kwargs)
        with torch.no_grad():
            for p in self.recommender.module.parameters():
                p.zero_()
        return report


def test_gate_promotes_good_candidates_and_rejects_a_sabotaged_one():
    registry = Registry.from_url("memory://", signer=None)
    worker, _, _ = make(SyncSource(raw(1000), batch_size=100), registry,
                        round_every_events=500)
    good = worker.run()
    assert [(r.version, r.promoted) for r in good.rounds] == [(1, True), (2, True)]
    assert good.rounds[0].reason == "no production model"
    assert good.rounds[1].production_version == 1
    assert registry.get_alias(MODEL, "production") == 2

    publisher = DeepPublisher(registry, MODEL)
    version, rec = publisher.warm_start()
    assert version.number == 2
    bad = SabotagedTuner(rec, device="cpu", batch_size=128, lr=0.03)
    worker, _, metrics = make(SyncSource(raw(600, seed=2), batch_size=100), registry,
                              finetuner=bad, publisher=publisher, round_every_events=10_000)
    stats = worker.run()
    (r,) = stats.rounds
    assert (r.version, r.promoted, r.production_version) == (3, False, 2)
    assert "above production" in r.reason and r.recent_rmse > r.production_recent_rmse
    assert registry.aliases(MODEL) == {"latest": 3, "candidate": 3, "production": 2}
    v3 = registry.get(MODEL, 3)
    assert v3.tags["promoted"] == "no" and v3.extra["gate_reason"] == r.reason
    assert v3.parent == 2
    assert sample(metrics, "lifelong_finetune_rejections_total") == 1
    assert sample(metrics, "lifelong_finetune_promotions_total") == 0


class FlakyPublisher(DeepPublisher):
    fail = 1

    def publish(self, recommender, *, metadata=None):
        if self.fail:
            self.fail -= 1
            raise ConnectionError("store down")
        return super().publish(recommender, metadata=metadata)


def test_a_failed_round_is_retried_with_its_events_and_nothing_is_committed_past_them():
    registry = Registry.from_url("memory://", signer=None)
    src = SyncSource(raw(600), batch_size=100)
    worker, _, metrics = make(src, registry, publisher=FlakyPublisher(registry, MODEL),
                              round_every_events=300, failure_backoff=0.0, min_fresh=50)
    stats = worker.run()
    assert stats.failures == 1
    assert sample(metrics, "lifelong_finetune_round_failures_total") == 1
    assert [(r.trigger, r.fresh + r.held_out) for r in stats.rounds] == [("events", 500),
                                                                         ("final", 100)]
    assert [r.offsets["memory:0"] for r in stats.rounds] == [500, 600]
    assert src.committed == {("memory", 0): 600}


def test_invalid_and_duplicate_records_are_counted_not_trained():
    values = raw(300)
    values[10:10] = [b"{", values[3], values[4], b'{"event_id": 1}']
    worker, _, metrics = make(ListSource(values, batch_size=64), round_every_events=10_000)
    stats = worker.run()
    assert (stats.consumed, stats.valid, stats.invalid, stats.duplicates) == (304, 300, 2, 2)
    assert sample(metrics, "lifelong_finetune_events_invalid_total") == 2
    assert sample(metrics, "lifelong_finetune_events_duplicate_total") == 2
    assert sum(r.fresh + r.held_out for r in stats.rounds) == 300


def test_cold_start_trains_the_backlog_by_curriculum_then_streams():
    registry = Registry.from_url("memory://", signer=None)
    events = raw(1200)
    worker, _, metrics = make(SyncSource(events[800:], batch_size=100), registry,
                              round_every_events=10_000)
    first = worker.cold_start(ListSource(events[:800], topic="backlog.jsonl"), stages=3)
    assert first is not None and first.trigger == "backlog" and first.promoted
    assert first.offsets == {"backlog.jsonl:0": 800} and first.fresh + first.held_out == 800
    assert first.report.fresh == first.fresh  # every stage's samples, once each
    assert registry.get_alias(MODEL, "production") == 1
    stats = worker.run()
    assert [r.trigger for r in stats.rounds] == ["backlog", "final"]
    last = stats.rounds[-1]
    assert last.old_rmse == last.old_rmse and last.bwt == last.bwt  # the backlog's slice is old
    assert sample(metrics, "lifelong_finetune_rounds_total", trigger="backlog") == 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="holdout_share"):
        make(ListSource([]), holdout_share=0.0)
    with pytest.raises(ValueError, match="min_fresh"):
        make(ListSource([]), min_fresh=0)
