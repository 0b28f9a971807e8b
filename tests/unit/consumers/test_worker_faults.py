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
