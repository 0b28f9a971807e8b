"""Input and score drift per model: injected drifts alarm on their signal, a stationary
stream raises none, the state resumes exactly, and the worker hook feeds it."""

from __future__ import annotations

import pickle
import random

import pytest
from prometheus_client import CollectorRegistry

from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from monitoring.drift_metrics import DriftMetrics
from monitoring.input_drift import ATTRIBUTE, SIGNALS, InputDrift, InputDriftWatch
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource
from stream.synthetic import SyntheticStream

WINDOW = 1000
CHANGE = 10_000
N = 20_000


def events(seed: int, inject: str | None = None, n: int = N):
    """(event, score) pairs; ``inject`` changes one signal from event CHANGE on."""
    rng = random.Random(seed)
    for i in range(n):
        on = inject is not None and i >= CHANGE
        kind = rng.choices(["rating", "click", "view"],
                           [2, 2, 6] if on and inject == "event_type" else [6, 3, 1])[0]
        user = ("bot" if on and inject == "user_activity" and rng.random() < 0.3
                else f"u{rng.randrange(500)}")
        item = (f"hot{rng.randrange(3)}" if on and inject == "item_popularity"
                and rng.random() < 0.5 else f"i{rng.randrange(800)}")
        value = rng.gauss(4.0 if on and inject == "value" else 3.5, 0.8)
        score = rng.gauss(4.0 if on and inject == "score" else 3.5, 0.4)
        yield Event(f"e{i}", user, item, kind, value, float(i)), score


def run(drift: InputDrift, pairs) -> list:
    for event, score in pairs:
        drift.observe(event, score)
    return drift.drain()


@pytest.mark.parametrize("seed", range(3))
def test_no_alarm_on_a_stationary_stream(seed):
    drift = InputDrift(window=WINDOW)
    assert run(drift, events(seed)) == []
    assert set(drift.psi()) == set(SIGNALS) and max(drift.psi().values()) < 0.1


def test_no_alarm_on_the_synthetic_stream_without_drift():
    stream = SyntheticStream(n_events=30_000, drift_at=(29_999,), seed=3)
    drift = InputDrift(window=WINDOW)
    assert run(drift, ((ev, 3.5) for ev in stream)) == []


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("seed", range(2))
def test_an_injected_drift_alarms_on_its_signal_within_one_window(signal, seed):
    drift = InputDrift(window=WINDOW)
    alarms = run(drift, events(seed, inject=signal))
    assert alarms, f"no alarm for a drift of {signal}"
    assert {a.signal for a in alarms} == {signal}, alarms
    assert all(a.at == CHANGE + WINDOW for a in alarms), alarms  # de-duplicated per change
    assert sum(drift.alarm_counts.values()) == len(alarms)


def test_no_score_alarm_while_a_cold_model_warms_up():
    rng = random.Random(0)
    spread = [(ev, 3.5 + rng.gauss(0, min(1.0, i / 4000))) for i, (ev, _) in
              enumerate(events(3, n=8000))]  # predictions spreading out as a model learns
    assert run(InputDrift(window=WINDOW), spread) == []
    found = run(InputDrift(window=WINDOW, score_warmup=0), spread)
    assert found and {a.signal for a in found} == {"score"}


def test_snapshot_restore_continue_equals_uninterrupted():
    pairs = list(events(5, inject="value"))
    whole = InputDrift(window=WINDOW)
    expected = run(whole, pairs)
    part = InputDrift(window=WINDOW)
    head = run(part, pairs[:CHANGE - 333])
    resumed = InputDrift.restore(part.snapshot())
    assert head + run(resumed, pairs[CHANGE - 333:]) == expected
    assert resumed.psi() == whole.psi() and resumed.alarm_counts == whole.alarm_counts


def test_unknown_signal_is_refused():
    with pytest.raises(ValueError, match="clicks"):
        InputDrift(detectors={"clicks": ("psi",)})


def test_watch_exports_psi_counts_alarms_and_calls_back():
    reg = CollectorRegistry()
    raised = []
    watch = InputDriftWatch(InputDrift(window=WINDOW), model="reco",
                            metrics=DriftMetrics(reg, model="reco"),
                            on_alarm=lambda at, **detail: raised.append((at, detail)))
    labels = {"model": "reco", "detector": "chi2", "signal": "event_type"}
    assert reg.get_sample_value("lifelong_drift_alarms_total", labels) == 0.0  # at zero
    for event, score in events(1, inject="event_type"):
        watch.observe(event, score)
        if event.ts % 250 == 0:
            watch.end_batch()
    watch.end_batch()
    assert reg.get_sample_value("lifelong_drift_alarms_total", labels) == 1.0
    assert reg.get_sample_value("lifelong_drift_psi",
                                {"model": "reco", "signal": "event_type"}) < 0.2  # settled
    assert [d["signal"] for _, d in raised] == ["event_type", "event_type"]  # chi2 and psi
    assert {d["detector"] for _, d in raised} == {"chi2", "psi"}
    assert all(at == CHANGE + WINDOW and d["source"] == "input" for at, d in raised)


def test_a_failing_callback_does_not_stop_learning():
    def broken(at, **detail):
        raise ConnectionError("store down")

    watch = InputDriftWatch(InputDrift(window=WINDOW), model="reco", on_alarm=broken)
    for event, score in events(2, inject="value"):
        watch.observe(event, score)
    assert len(watch.end_batch()) == 2


def test_the_state_travels_inside_the_learner():
    learner = OnlineLearner("Baseline")
    watch = InputDriftWatch.for_learner(learner, "reco", window=WINDOW)
    for event, score in list(events(4))[:2500]:
        learner.learn_one(event)
        watch.observe(event, score)
    clone = OnlineLearner.restore(learner.snapshot())
    again = InputDriftWatch.for_learner(clone, "reco", window=5)  # resumes, config ignored
    assert again.drift.window == WINDOW and again.drift.n == 2500
    assert pickle.loads(pickle.dumps(getattr(clone, ATTRIBUTE))).n == 2500


def test_the_worker_feeds_every_valid_event_and_announces_alarms():
    pairs = list(events(6, inject="value", n=12_000))
    raw = [encode(ev) for ev, _ in pairs] + [b"not json"]
    raised = []
    learner = OnlineLearner("Baseline")
    watch = InputDriftWatch.for_learner(learner, "reco", window=WINDOW,
                                        on_alarm=lambda at, **d: raised.append((at, d)))
    stats = LearnerWorker(ListSource(raw, batch_size=500), learner, ListDeadLetters(),
                          input_drift=watch).run()
    assert stats.learned == 12_000 and watch.drift.n == 12_000  # the invalid one is not fed
    found = sorted((d["signal"], d["detector"], at) for at, d in raised)
    assert [f for f in found if f[0] == "value"] == [("value", "ks", 11_000),
                                                      ("value", "psi", 11_000)]
    # the model's scores move too, after the values moved (not while it warmed up)
    assert {f for f in found if f[0] == "score"} <= {("score", "ks", 11_000),
                                                     ("score", "psi", 11_000),
                                                     ("score", "psi", 12_000)}
