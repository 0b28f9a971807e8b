"""Sharded learners on real Kafka and Redis: three processes share a 6-partition topic, one is
killed with SIGKILL and one added mid-stream, and every event is learned exactly once.

Checked per shard against the topic itself: the records' partitions (the producer's
partitioner equals the router's), their count and value sum equal the shard model's own
counters (River's global mean: count and mean), its ``events_seen`` and prequential count,
and its version covers exactly the partition's end offset. Then a :class:`ShardRouter`
answers for users of every shard what that shard's model answers.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from consumers.item_exchange import items_name
from learning.item_side import ItemSide
from learning.item_side import decode as decode_delta
from model_store import Registry
from model_store.router import ShardRouter, partition_for, read_manifest, shard_name
from stream.producer import EventProducer
from stream.schema import Event, decode
from stream.synthetic import SyntheticStream
from tests.integration.consumers.sharded import assigned, sharded_env, start_learner, stop, wait_for

pytestmark = pytest.mark.integration
PARTS = 6
N = 6000


@pytest.fixture()
def env(kafka, redis_service, unique, signing_key):
    yield from sharded_env(kafka.address, redis_service.address, f"it-shards-{unique}", PARTS,
                           signing_key)


def _learner(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_learner(env, log, publish_every_events=150, idle_timeout=120)


def _produce(env: dict[str, str], events: list[Event], rate: float) -> None:
    with EventProducer(env["KAFKA_BOOTSTRAP_SERVERS"], env["LIFELONG_TOPIC"]) as producer:
        producer.send_all(events, rate=rate)


def _latest(registry: Registry) -> dict[int, object]:
    return {p: registry.latest(shard_name("reco", p)) for p in range(PARTS)}


def _topic_truth(env: dict[str, str]) -> dict[int, tuple[int, float, int]]:
    """Per partition: record count, value sum, end offset; every key on the router's partition."""
    consumer = KafkaConsumer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    parts = [TopicPartition(env["LIFELONG_TOPIC"], p) for p in range(PARTS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ends = consumer.end_offsets(parts)
    truth = {p: [0, 0.0] for p in range(PARTS)}
    for message in itertools.islice(consumer, N):
        event = decode(message.value)
        assert isinstance(event, Event)
        assert partition_for(message.key, PARTS) == message.partition  # producer == router
        assert partition_for(event.user_id, PARTS) == message.partition
        truth[message.partition][0] += 1
        truth[message.partition][1] += event.value
    consumer.close()
    return {p: (n, s, ends[TopicPartition(env["LIFELONG_TOPIC"], p)])
            for p, (n, s) in truth.items()}


def test_three_sharded_learners_one_killed_one_added_learn_every_event_once(env, tmp_path):
    events = list(SyntheticStream(n_events=N, drift_at=(), seed=11))
    registry = Registry.from_url(env["REDIS_URL"], prefix=env["LIFELONG_PREFIX"])
    logs = [tmp_path / f"learner{n}.log" for n in range(4)]
    procs = [_learner(env, log) for log in logs[:3]]
    producer = threading.Thread(target=_produce, args=(env, events, 500.0))
    try:
        wait_for("the group to balance", lambda: all(
            len(a) == 2 for a in [assigned(x) for x in logs[:3]]), procs, 120)
        producer.start()  # 12 s of events at 500/s
        wait_for("every shard's first version",
              lambda: all(v is not None for v in _latest(registry).values()), procs, 60)
        before_kill = {p: v.extra["events_seen"] for p, v in _latest(registry).items()}
        os.kill(procs[0].pid, signal.SIGKILL)  # mid-stream, holding two partitions
        procs[0].wait(10)
        procs = procs[1:]
        procs.append(_learner(env, logs[3]))
        # the dead member's session times out after 10 s (lifelong.shard_wiring's group
        # settings), so the survivors may take its partitions and finish the stream before
        # the added learner has started: wait for its share, then for every event
        wait_for("the added learner's partitions", lambda: bool(assigned(logs[3])),
              procs, 120)
        producer.join(60)
        wait_for("every event learned and published",
              lambda: sum(v.extra["events_seen"] for v in _latest(registry).values()) >= N,
              procs, 180)
    finally:
        stop(procs, logs)
    assert sum(before_kill.values()) < N  # the kill came mid-stream
    assert all(p.returncode == 0 for p in procs)
    assert read_manifest(registry, "reco").partitions == PARTS
    truth = _topic_truth(env)
    assert sum(n for n, _, _ in truth.values()) == N
    for p, (count, value_sum, end) in truth.items():
        version, model = registry.load_object(shard_name("reco", p), "latest")
        assert version.offsets == {f"{env['LIFELONG_TOPIC']}:{p}": end}
        assert version.extra["events_seen"] == count == model.events_seen
        assert model.score().n == count
        # the global item side: the shard's own updates of the global mean it sent (its
        # chain up to the checkpoint's count) plus its pending delta are exactly its events,
        # across the kill -9 (a restored shard corrects for deltas sent after its checkpoint)
        side = ItemSide.of(model)
        sent = [decode_delta(registry.read_blob(items_name("reco", p), n))
                for n in range(1, side.sent + 1)]
        own = [d.mean for d in sent] + ([side.pending.mean] if side.pending else [])
        assert sum(n for n, _ in own) == pytest.approx(count, abs=1e-6)
        assert sum(v for _, v in own) == pytest.approx(value_sum, rel=1e-9)
        mean = model.model._model.global_mean  # own events and the peers' merged deltas
        assert mean.n >= count and side.seen, "no peer delta merged"
    # serving: predictions for a user of every shard are that shard's model's
    users = {partition_for(e.user_id, PARTS): e.user_id for e in events}
    assert sorted(users) == list(range(PARTS))
    with ShardRouter(registry, "reco") as router:
        assert router.wait_for_versions(
            {p: registry.latest(shard_name("reco", p)).number for p in range(PARTS)}, 10)
        for p, user in users.items():
            _, model = registry.load_object(shard_name("reco", p), "latest")
            for item in ("i1", "i7", "i42"):
                assert router.shard_of(user) == p
                assert router.predict(user, item) == model.predict_one(user, item)
    registry.close()
