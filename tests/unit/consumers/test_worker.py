import itertools

from prometheus_client import CollectorRegistry

from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from monitoring.metrics import LearnerMetrics
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource


class RecordingPublisher:
    """An in-memory publisher: remembers what it was asked to publish."""

    def __init__(self):
        self.calls = []
        self.numbers = itertools.count(1)

    def publish(self, learner, positions):
        self.calls.append((learner.events_seen, dict(positions)))
        return next(self.numbers)


def _raw(n, dup_every=0):
    out = []
    for k in range(n):
        out.append(encode(Event(f"e{k}", f"u{k % 7}", f"i{k % 11}", "rating", float(k % 5 + 1),
                                float(k))))
        if dup_every and k % dup_every == 0:
            out.append(out[-1])
    return out


def test_invalid_records_go_to_dead_letters_with_reasons_and_never_stop_the_loop():
    values = _raw(10)
    values[3:3] = [b"{", b"\xff\xfe", b'{"event_id":"x"}', b"x" * 70_000]
    src, dlq = ListSource(values, batch_size=3), ListDeadLetters()
    stats = LearnerWorker(src, OnlineLearner(), dlq).run()
    assert (stats.consumed, stats.learned, stats.invalid) == (14, 10, 4)
    kinds = sorted(reason.split(":")[0] for _, reason in dlq.items)
    assert kinds == ["encoding", "malformed", "schema", "too_large"]
    assert [r.offset for r, _ in dlq.items] == [3, 4, 5, 6]
    assert src.committed == {("memory", 0): 14}


def test_duplicates_are_dropped_and_counted():
    src = ListSource(_raw(20, dup_every=5))
    stats = LearnerWorker(src, OnlineLearner(), ListDeadLetters()).run()
    assert stats.duplicates == 4 and stats.learned == 20


def test_publishes_every_n_events_and_commits_what_each_version_covers():
    src, pub = ListSource(_raw(25), batch_size=5), RecordingPublisher()
    worker = LearnerWorker(src, OnlineLearner(), ListDeadLetters(), publisher=pub,
                           publish_every_events=10, publish_every_seconds=1e9)
    stats = worker.run()
    assert [seen for seen, _ in pub.calls] == [10, 20, 25]
    assert [pos[("memory", 0)] for _, pos in pub.calls] == [10, 20, 25]
    assert stats.versions == [1, 2, 3]
    assert src.committed == {("memory", 0): 25}


def test_publishes_on_time_even_with_few_events():
    now = [0.0]
    src, pub = ListSource(_raw(6), batch_size=2), RecordingPublisher()

    def clock():
        now[0] += 1.0
        return now[0]

    LearnerWorker(src, OnlineLearner(), ListDeadLetters(), publisher=pub,
                  publish_every_events=1000, publish_every_seconds=2.5, clock=clock).run()
    assert len(pub.calls) >= 2  # by time during the run, plus the final one


def test_max_events_stops_and_commits_only_what_was_processed():
    src = ListSource(_raw(30), batch_size=8)
    stats = LearnerWorker(src, OnlineLearner(), ListDeadLetters()).run(max_events=12)
    assert stats.consumed == 12
    assert src.committed == {("memory", 0): 12}


def test_metrics_follow_the_stats():
    reg = CollectorRegistry()
    metrics = LearnerMetrics(reg, model="m", topic="memory")
    values = [*_raw(5), b"nope"]
    LearnerWorker(ListSource(values), OnlineLearner(), ListDeadLetters(), metrics=metrics).run()
    labels = {"model": "m", "topic": "memory"}
    assert reg.get_sample_value("lifelong_learner_events_consumed_total", labels) == 6
    assert reg.get_sample_value("lifelong_learner_events_learned_total", labels) == 5
    assert reg.get_sample_value("lifelong_learner_events_invalid_total",
                                {**labels, "reason": "malformed"}) == 1
    assert reg.get_sample_value("lifelong_learner_prequential_rmse", {"model": "m"}) > 0


def test_drift_alarm_fires_after_the_known_drift_point_and_is_counted():
    from monitoring.drift import ErrorDrift
    from stream.synthetic import SyntheticStream

    stream = SyntheticStream(n_events=16000, drift_at=(8000,), seed=1)
    reg = CollectorRegistry()
    metrics = LearnerMetrics(reg, model="m", topic="memory")
    seen = []
    worker = LearnerWorker(ListSource([encode(e) for e in stream]),
                           OnlineLearner(clip=(1.0, 5.0)), ListDeadLetters(), metrics=metrics,
                           drift=ErrorDrift(), on_drift=seen.append)
    stats = worker.run()
    assert stats.drift_alarms == seen
    assert len(seen) == 1 and 8000 <= seen[0] < 8500
    assert reg.get_sample_value("lifelong_learner_drift_alarms_total", {"model": "m"}) == 1


def test_a_store_outage_does_not_stop_learning_nor_commit_and_the_publish_is_retried():
    class FlakyPublisher(RecordingPublisher):
        def __init__(self):
            super().__init__()
            self.down = True

        def publish(self, learner, positions):
            if self.down:
                raise ConnectionError("redis is restarting")
            return super().publish(learner, positions)

    now = [0.0]

    def clock():
        return now[0]

    src, pub = ListSource(_raw(30), batch_size=5), FlakyPublisher()
    reg = CollectorRegistry()
    worker = LearnerWorker(src, OnlineLearner(), ListDeadLetters(), publisher=pub,
                           publish_every_events=10, publish_every_seconds=1e9, clock=clock,
                           retry_seconds=5.0, metrics=LearnerMetrics(reg, model="m", topic="t"))
    worker.process(src.poll())
    worker.process(src.poll())
    assert worker.publish() is None and src.committed == {}
    worker.process(src.poll())
    assert not worker._publish_due()  # backing off
    now[0] = 6.0
    pub.down = False
    assert worker._publish_due()
    assert worker.publish() == 1 and src.committed == {("memory", 0): 15}
    assert pub.calls == [(15, {("memory", 0): 15})]
    assert worker.stats.publish_failures == 1
    assert reg.get_sample_value("lifelong_model_publish_failures_total", {"model": "m"}) == 1
