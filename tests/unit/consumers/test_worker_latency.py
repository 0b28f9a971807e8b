"""The event-to-model latency histogram is observed once a batch, not once an event."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from monitoring.metrics import LearnerMetrics
from stream.source import ListDeadLetters, ListSource, Record

NAME = "lifelong_learner_event_to_model_latency_seconds"


def _record(i: int, ts: float | None) -> Record:
    value = (f'{{"event_id":"{i}","user_id":"u{i % 3}","item_id":"i{i % 5}",'
             f'"type":"rating","value":4,"ts":1}}').encode()
    return Record(value=value, topic="t", partition=0, offset=i, timestamp=ts)


def _worker() -> tuple[LearnerWorker, CollectorRegistry]:
    reg = CollectorRegistry()
    worker = LearnerWorker(ListSource([]), OnlineLearner(), ListDeadLetters(),
                           metrics=LearnerMetrics(reg, model="m", topic="t"),
                           wall_clock=lambda: 1000.0)
    return worker, reg


def test_one_observe_a_batch_of_its_oldest_records_age() -> None:
    worker, reg = _worker()
    worker.process([_record(i, 990.0 + i) for i in range(5)])  # ages 10, 9, ... 6
    worker.process([_record(5, 999.5), _record(6, None)])
    assert reg.get_sample_value(f"{NAME}_count", {"model": "m"}) == 2
    assert reg.get_sample_value(f"{NAME}_sum", {"model": "m"}) == 10.0 + 0.5
    assert reg.get_sample_value(f"{NAME}_bucket", {"model": "m", "le": "0.5"}) == 1


def test_no_observe_without_timestamps_or_without_learning() -> None:
    worker, reg = _worker()
    worker.process([_record(0, None), _record(1, None)])  # files carry no broker time
    worker.process([_record(0, 995.0)])  # a duplicate: nothing learned
    worker.process([Record(value=b"{", topic="t", partition=0, offset=9, timestamp=995.0)])
    assert worker.stats.learned == 2 and worker.stats.duplicates == 1
    assert reg.get_sample_value(f"{NAME}_count", {"model": "m"}) == 0
