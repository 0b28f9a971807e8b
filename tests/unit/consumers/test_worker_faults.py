"""Faults and hostile inputs in the learner loop (issue 9)."""

from __future__ import annotations

import itertools
import json
import math

from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from monitoring.metrics import LearnerMetrics
from stream.quality import QualityGates
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource

NOW = 1_700_000_000.0


class RecordingPublisher:
    def __init__(self):
        self.calls = []
        self.numbers = itertools.count(1)

    def publish(self, learner, positions):
        self.calls.append((learner.events_seen, dict(positions)))
        return next(self.numbers)


def _events(n: int, start: int = 0) -> list[bytes]:
    return [encode(Event(f"e{k}", f"u{k % 7}", f"i{k % 11}", "rating", float(k % 5 + 1),
                         NOW - 10_000 + k)) for k in range(start, start + n)]


def _poison() -> list[bytes]:
    raw = [b'{"event_id":"p1","user_id":"u1","item_id":"i1","type":"rating","value":1e308,'
           b'"ts":1700000000}',
           b'{"event_id":"p2","user_id":"u1","item_id":"i1","type":"rating","value":-1e9,'
           b'"ts":1700000000}',
           b'{"event_id":"p3","user_id":"u1","item_id":"i1","type":"rating","value":3,'
           b'"ts":1e15}',
           b'{"event_id":"p4","user_id":"u1","item_id":"i1","type":"rating","value":3,'
           b'"ts":"9999-12-31T00:00:00Z"}']
    return raw


def test_poison_values_are_quarantined_counted_and_the_model_stays_finite():
    values = _events(50)
    values[20:20] = _poison()
    reg = CollectorRegistry()
    quarantine, dlq, pub = ListDeadLetters(), ListDeadLetters(), RecordingPublisher()
    learner = OnlineLearner(clip=(1.0, 5.0))
    worker = LearnerWorker(ListSource(values, batch_size=7), learner, dlq, publisher=pub,
                           quarantine=quarantine, metrics=LearnerMetrics(reg, model="m",
                                                                         topic="memory"),
                           wall_clock=lambda: NOW)
    stats = worker.run()
    assert (stats.learned, stats.quarantined, stats.invalid) == (50, 4, 0)
    assert stats.quarantined_by_reason == {"value_range": 2, "ts_future": 2}
    assert [r.offset for r, _ in quarantine.items] == [20, 21, 22, 23] and not dlq.items
    assert quarantine.items[0][1].startswith("value_range: value 1e+308")
    assert reg.get_sample_value("lifelong_learner_events_quarantined_total",
                                {"model": "m", "topic": "memory", "reason": "ts_future"}) == 2
    assert math.isfinite(learner.score().rmse)
    assert all(math.isfinite(learner.predict_one(f"u{u}", f"i{i}"))
               for u in range(7) for i in range(11))
    assert pub.calls[-1][0] == 50


def test_a_bot_burst_is_quarantined_beyond_the_user_rate():
    burst = [encode(Event(f"b{k}", "bot", f"i{k}", "click", 1.0, NOW + k * 0.01))
             for k in range(100)]
    gates = QualityGates.from_env_value('{"*": {"max_per_user": 10, "per_seconds": 60}}')
    quarantine = ListDeadLetters()
    stats = LearnerWorker(ListSource(burst), OnlineLearner(), ListDeadLetters(), quality=gates,
                          quarantine=quarantine, wall_clock=lambda: NOW).run()
    assert (stats.learned, stats.quarantined) == (10, 90)
    assert {why.split(":")[0] for _, why in quarantine.items} == {"user_rate"}


def test_a_model_that_is_not_finite_is_never_published_and_raises_the_alarm():
    values = _events(30)
    values[12:12] = _poison()[:1]
    pub, refused = RecordingPublisher(), []
    reg = CollectorRegistry()
    worker = LearnerWorker(ListSource(values, batch_size=10), OnlineLearner(),
                           ListDeadLetters(), publisher=pub, publish_every_events=10,
                           publish_every_seconds=1e9, quality=QualityGates({}),
                           on_refused=refused.append,
                           metrics=LearnerMetrics(reg, model="m", topic="memory"))
    stats = worker.run()
    assert [seen for seen, _ in pub.calls] == [10]  # the last good version, nothing after
    assert stats.refused_publishes >= 1 and refused
    assert any(word in refused[0] for word in ("inf", "nan", "not finite"))
    assert reg.get_sample_value("lifelong_model_publish_refused_total", {"model": "m"}) >= 1


def test_evaluate_quarantines_poison_and_fails_when_the_error_is_not_finite(tmp_path,
                                                                            monkeypatch):
    from lifelong.cli import app

    data = tmp_path / "events.jsonl"
    rows = _events(40)
    rows[10:10] = _poison()
    data.write_bytes(b"\n".join(rows) + b"\n")
    out = tmp_path / "report.json"
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "-d", str(data), "-f", "jsonl", "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["quarantined"] == 4 and math.isfinite(report["rmse"])
    monkeypatch.setenv("LIFELONG_QUALITY", "off")
    result = runner.invoke(app, ["evaluate", "-d", str(data), "-f", "jsonl", "-o", str(out)])
    assert result.exit_code == 1 and "not finite" in result.output


# -- finding 2: every record ends in exactly one place, whatever raises ----------------------
class Learner(OnlineLearner):
    """Raises on one event id, as a learner bug would."""

    def learn_one(self, event):
        if event.event_id == "e5":
            raise ZeroDivisionError("boom")
        return super().learn_one(event)


def test_a_tombstone_goes_to_the_dead_letters_and_the_loop_goes_on():
    values = [*_events(3), None, *_events(3, start=3)]
    src, dlq = ListSource(values), ListDeadLetters()
    stats = LearnerWorker(src, OnlineLearner(), dlq).run()
    assert (stats.learned, stats.invalid) == (6, 1)
    assert dlq.items[0][0].offset == 3 and dlq.items[0][1].startswith("tombstone:")
    assert src.committed == {("memory", 0): 7}


def test_a_record_whose_handling_raises_is_dead_lettered_and_the_batch_goes_on():
    reg = CollectorRegistry()
    src, dlq, pub = ListSource(_events(12), batch_size=12), ListDeadLetters(), RecordingPublisher()
    stats = LearnerWorker(src, Learner(), dlq, publisher=pub,
                          metrics=LearnerMetrics(reg, model="m", topic="memory")).run()
    assert (stats.consumed, stats.learned, stats.invalid) == (12, 11, 1)
    assert [(r.offset, why) for r, why in dlq.items] == [(5, "error: ZeroDivisionError: boom")]
    assert pub.calls[-1] == (11, {("memory", 0): 12})
    labels = {"model": "m", "topic": "memory"}
    assert reg.get_sample_value("lifelong_learner_events_consumed_total", labels) == 12
    assert reg.get_sample_value("lifelong_learner_events_learned_total", labels) == 11


def test_the_resume_position_never_passes_a_record_that_reached_no_place():
    class BrokenDeadLetters(ListDeadLetters):
        def put(self, record, reason):
            raise OSError("dead letters unreachable")

    values = [*_events(4), b"not json", *_events(4, start=4)]
    pub = RecordingPublisher()
    worker = LearnerWorker(ListSource(values), OnlineLearner(), BrokenDeadLetters(),
                           publisher=pub)
    try:
        worker.run()
    except OSError:
        pass
    else:
        raise AssertionError("the run should stop: the record has no place")
    assert pub.calls == [(4, {("memory", 0): 4})]  # the final version stops before offset 4


def test_dead_letters_are_durable_before_a_version_covers_them():
    class FlakyDeadLetters(ListDeadLetters):
        down = True
        flushed = 0

        def flush(self):
            if self.down:
                raise OSError("broker down")
            self.flushed = len(self.items)

    dlq, pub = FlakyDeadLetters(), RecordingPublisher()
    now = [0.0]
    src = ListSource([*_events(5), b"{", *_events(5, start=5)], batch_size=11)
    worker = LearnerWorker(src, OnlineLearner(), dlq, publisher=pub, publish_every_events=5,
                           clock=lambda: now[0])
    worker.process(src.poll())
    assert worker.publish() is None and pub.calls == [] and src.committed == {}
    dlq.down = False
    now[0] = 10.0
    assert worker.publish() == 1 and dlq.flushed == 1
    assert pub.calls == [(10, {("memory", 0): 11})]


def test_a_batch_of_only_refused_records_is_still_covered_by_a_version():
    src, pub = ListSource([b"{", b"[", None]), RecordingPublisher()
    LearnerWorker(src, OnlineLearner(), ListDeadLetters(), publisher=pub).run()
    assert pub.calls == [(0, {("memory", 0): 3})]


def test_an_oversized_dead_letter_is_cut_to_fit_with_its_original_size():
    from consumers.dlq import fit_record
    from stream.source import Record

    big = Record(b"x" * (1 << 20), "events", 1, 77, key=b"u1")
    value, key, headers = fit_record(big, [("reason", b"too_large: 1048576 bytes > 65536")])
    size = len(value) + len(key) + sum(len(k) + len(v) for k, v in headers)
    h = dict(headers)
    assert size < 1_000_000 and h["source.size"] == b"1048576" and h["dlq.truncated"] == b"true"
    assert value == big.value[: len(value)]


# -- finding 5: a failed commit does not end the learner nor publish twice -------------------
def test_a_failed_commit_after_a_publish_is_counted_and_not_published_twice():
    from kafka.errors import CommitFailedError, KafkaTimeoutError

    class FailingCommits(ListSource):
        errors = [KafkaTimeoutError("broker down"), CommitFailedError()]

        def commit(self, positions):
            if self.errors:
                raise self.errors.pop(0)
            super().commit(positions)

    reg = CollectorRegistry()
    src, pub = FailingCommits(_events(30), batch_size=10), RecordingPublisher()
    stats = LearnerWorker(src, OnlineLearner(), ListDeadLetters(), publisher=pub,
                          publish_every_events=10, publish_every_seconds=1e9,
                          metrics=LearnerMetrics(reg, model="m", topic="memory")).run()
    assert [seen for seen, _ in pub.calls] == [10, 20, 30]  # each state published once
    assert stats.versions == [1, 2, 3] and stats.commit_failures == 2
    assert src.committed == {("memory", 0): 30}
    assert reg.get_sample_value("lifelong_learner_commit_failures_total", {"model": "m"}) == 2


def test_the_fine_tuner_never_trains_on_what_the_gates_quarantine():
    from consumers.deep_publisher import DeepPublisher
    from consumers.finetune_worker import FineTuneWorker
    from learning.finetune import FineTuner
    from learning.replay import ReplayBuffer
    from learning.torch_models import DeepRecommender
    from model_store import Registry

    values = _events(200)
    values[50:50] = _poison()
    rec = DeepRecommender("mf", n_factors=4, clip=(1.0, 5.0), seed=0)
    worker = FineTuneWorker(ListSource(values, batch_size=64),
                            FineTuner(rec, device="cpu", batch_size=64, epochs_per_round=1),
                            ReplayBuffer(1000, recent_window=100, seed=0),
                            DeepPublisher(Registry.from_url("memory://", signer=None), "deep"),
                            min_fresh=50, round_every_events=10_000, round_every_seconds=1e9,
                            wall_clock=lambda: NOW)
    stats = worker.run()
    assert (stats.valid, stats.quarantined) == (200, 4)
    assert sum(r.fresh + r.held_out for r in stats.rounds) == 200


def test_a_deep_model_with_a_nan_weight_is_never_published():
    import pytest
    import torch

    from consumers.deep_publisher import DeepPublisher
    from learning.torch_models import DeepRecommender
    from model_store import Registry

    registry = Registry.from_url("memory://", signer=None)
    publisher = DeepPublisher(registry, "deep")
    good = DeepRecommender("mf", n_factors=2)
    assert publisher.publish(good).number == 1
    bad = DeepRecommender("mf", n_factors=2)
    with torch.no_grad():
        next(bad.module.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        publisher.publish(bad)
    assert [v.number for v in registry.versions("deep")] == [1]
