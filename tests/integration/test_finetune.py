"""The fine-tune worker on the real servers: Kafka -> rounds -> deep versions in Redis."""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaAdminClient
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from consumers.alarms import StoreAlarms
from consumers.deep_publisher import DeepPublisher
from consumers.finetune_worker import FineTuneWorker
from consumers.kafka_source import KafkaSource
from learning import weights
from learning.finetune import FineTuner
from learning.replay import ReplayBuffer
from learning.torch_models import DeepRecommender
from model_store import Registry
from model_store.subscriber import Subscriber
from monitoring.metrics import FineTuneMetrics
from stream.producer import EventProducer
from stream.synthetic import SyntheticStream, write

pytestmark = pytest.mark.integration

DEEP = "reco-deep"


@pytest.fixture()
def topic(events_topic):
    return events_topic


@pytest.fixture()
def prefix(store_prefix):
    return store_prefix


def _wait(predicate, timeout: float, what) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what()}"
        time.sleep(0.05)


def _committed(kafka, group: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=kafka.address, client_id="it-ft-admin")
    try:
        return sum(o.offset for o in admin.list_group_offsets(group)[group].values())
    finally:
        admin.close()


def test_worker_publishes_gated_deep_versions_and_a_drift_alarm_triggers_a_round(
        kafka, redis_service, topic, prefix, unique):
    stream = list(SyntheticStream(n_users=150, n_items=200, n_events=2600, drift_at=(1300,),
                                  drift_kind="population", seed=11).raw())
    registry = Registry.from_url(redis_service.address, prefix=prefix)
    group = f"it-ft-group-{unique}"
    source = KafkaSource(kafka.address, [topic], group)
    metrics = CollectorRegistry()
    rec = DeepRecommender("mf", n_factors=16, clip=(1.0, 5.0), seed=0)
    worker = FineTuneWorker(
        source, FineTuner(rec, device="auto", batch_size=256, lr=0.03, epochs_per_round=3),
        ReplayBuffer(20_000, recent_window=2000), DeepPublisher(registry, DEEP),
        round_every_events=600, round_every_seconds=1e9, min_fresh=200,
        metrics=FineTuneMetrics(metrics, model=DEEP),
        alarms=StoreAlarms(registry, ["reco", DEEP]).start())
    stop = threading.Event()
    rounds = []
    thread = threading.Thread(target=worker.run, kwargs={"stop": stop,
                                                         "on_round": rounds.append})
    thread.start()

    def settled(consumed: int):  # all read, every round collected, none due by count
        return lambda: (worker.stats.consumed >= consumed and not worker.round_running
                        and sum(r.fresh + r.held_out for r in rounds) + len(worker.pending)
                        == consumed and len(worker.pending) < worker.round_every_events)

    try:
        with EventProducer(kafka.address, topic) as producer:
            producer.send_all(stream[:2000])
        _wait(settled(2000), 40, lambda: f"the first 2000 events ({worker.stats})")
        assert len(rounds) >= 2 and {r.trigger for r in rounds} == {"events"}
        # the online learner raises a drift alarm: a round starts, on fewer events than 600
        registry.alarm("reco", detail={"events": 2000}, actor="online")
        _wait(lambda: worker.stats.alarms == 1, 10, lambda: "the alarm")
        with EventProducer(kafka.address, topic) as producer:
            producer.send_all(stream[2000:2400])
        _wait(lambda: rounds[-1].trigger == "drift", 20, lambda: f"a drift round ({rounds})")
        _wait(settled(2400), 20, lambda: f"the next 400 events ({worker.stats})")
    finally:
        stop.set()
        thread.join(60)
        worker.alarms.close()  # type: ignore[union-attr]
        source.close()
    assert not thread.is_alive()
    assert [r.trigger for r in rounds].count("drift") == 1
    # offsets are committed once the version covering them is published
    assert _committed(kafka, group) == sum(rounds[-1].offsets.values())
    assert sum(rounds[-1].offsets.values()) + len(worker.pending) >= 2000

    versions = registry.versions(DEEP)
    assert [v.number for v in versions] == [r.version for r in rounds]
    assert [r.version for r in rounds] == list(range(1, len(rounds) + 1))
    aliases = registry.aliases(DEEP)
    assert aliases["candidate"] == aliases["latest"] == len(rounds)
    promoted = [r.version for r in rounds if r.promoted]
    assert promoted[0] == 1 and aliases["production"] == promoted[-1]
    for v, r in zip(versions, rounds, strict=True):
        assert v.format == "safetensors" and v.tags["learner"] == "finetune"
        assert v.metrics["recent_rmse"] == pytest.approx(r.recent_rmse)
        assert v.metrics["samples_per_second"] > 0 and v.metrics["loss"] > 0
        assert v.extra["gate_reason"] == r.reason
    assert versions[-1].metrics["old_rmse"] > 0 and versions[-1].metrics["bwt"] is not None
    assert rounds[-1].recent_rmse < 1.2  # ratings 1-5 with noise 0.3: it learned something
    assert metrics.get_sample_value("lifelong_finetune_drift_triggered_rounds_total",
                                    {"model": DEEP}) == 1

    production = registry.get_alias(DEEP, "production")
    expected = weights.load(registry.read_blob(DEEP, production)).predict_one("u3", "i5")
    with Subscriber(registry, DEEP, alias="production",
                    loader=lambda v, b: weights.load(b)) as sub:
        assert sub.wait_for_version(production, timeout=10)
        assert sub.predict("u3", "i5") == expected and 1.0 <= expected <= 5.0
    registry.close()


def test_cli_cold_starts_from_a_backlog_then_streams(kafka, redis_service, topic, prefix,
                                                      unique, tmp_path, monkeypatch):
    from lifelong.cli import app

    stream = SyntheticStream(n_users=80, n_items=100, n_events=1600, seed=12)
    backlog = tmp_path / "backlog.csv"
    write(SyntheticStream(n_users=80, n_items=100, n_events=1200, seed=13), backlog, "csv")
    with EventProducer(kafka.address, topic) as producer:
        producer.send_all(stream.raw())
    for var, value in {"KAFKA_BOOTSTRAP_SERVERS": kafka.address,
                       "REDIS_URL": redis_service.address, "LIFELONG_PREFIX": prefix,
                       "LIFELONG_TOPIC": topic, "LIFELONG_MODEL": "reco"}.items():
        monkeypatch.setenv(var, value)
    result = CliRunner().invoke(app, [
        "finetune", "--backlog", str(backlog), "--backlog-format", "csv", "--group",
        f"it-ft-cli-{unique}", "--round-every-events", "800", "--min-fresh", "200",
        "--factors", "8", "--batch-size", "256", "--device", "cpu", "--max-events", "1600",
        "--idle-timeout", "20", "--clip", "1,5"])
    assert result.exit_code == 0, result.output
    assert "round 1 (backlog): v1 promoted (no production model)" in result.output
    assert "round 2 (events): v2" in result.output
    assert "consumed 1600" in result.output
    registry = Registry.from_url(redis_service.address, prefix=prefix)
    v1 = registry.get(DEEP, 1)
    assert v1.tags["trigger"] == "backlog" and v1.offsets == {f"{backlog}:0": 1200}
    assert registry.get_alias(DEEP, "production") >= 1
    assert registry.get_alias(DEEP, "candidate") == registry.latest(DEEP).number >= 3
    registry.close()


def test_cli_finetune_task_ranking_publishes_a_ranker_a_subscriber_recommends_with(
        kafka, redis_service, topic, prefix, unique, monkeypatch):
    """`lifelong finetune --task ranking` on a real click stream: gated on NDCG@10, format
    deep-ranking, and a Subscriber on the real store recommends k unseen items with it."""
    import torch

    from learning.rank_deep import DeepRanker
    from lifelong.cli import app
    from stream.synthetic_implicit import ImplicitStream

    torch.set_num_threads(1)
    stream = ImplicitStream(n_users=80, n_items=150, n_events=1500, drift_at=(), seed=4)
    with EventProducer(kafka.address, topic) as producer:
        producer.send_all(stream.raw())
    for var, value in {"KAFKA_BOOTSTRAP_SERVERS": kafka.address,
                       "REDIS_URL": redis_service.address, "LIFELONG_PREFIX": prefix,
                       "LIFELONG_TOPIC": topic, "LIFELONG_MODEL": "reco",
                       "LIFELONG_QUALITY": "off"}.items():
        monkeypatch.setenv(var, value)
    result = CliRunner().invoke(app, [
        "finetune", "--task", "ranking", "--group", f"it-ft-rank-{unique}",
        "--round-every-events", "700", "--min-fresh", "200", "--factors", "8",
        "--batch-size", "256", "--device", "cpu", "--max-events", "1500",
        "--idle-timeout", "20", "--negatives", "16"])
    assert result.exit_code == 0, result.output
    assert "ranking: mf" in result.output and "recent NDCG@10" in result.output
    assert "consumed 1500" in result.output
    registry = Registry.from_url(redis_service.address, prefix=prefix)
    latest = registry.latest(DEEP)
    assert latest.format == "deep-ranking" and latest.tags["task"] == "ranking"
    assert 0.0 <= latest.metrics["recent_ndcg@10"] <= 1.0
    with Subscriber(registry, DEEP, alias="production") as sub:
        assert sub.wait_for_version(1, timeout=20)
        model = sub.current[1]
        assert isinstance(model, DeepRanker)
        user = model.users.id_of(0)
        recs = sub.recommend(user, k=10)
        seen = {model.item_ids()[r] for r in model.seen_items(user)}
        assert len(recs) == 10 and not seen & {item for item, _ in recs}
        assert len(sub.recommend("a-user-never-seen", k=5)) == 5
    registry.close()
