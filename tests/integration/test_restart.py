"""No event lost or learned twice across a crash: kill -9 the learner, restart, count.

A published version holds the model and, in the same Redis transaction, the offsets it
covers; a restarted learner restores it and seeks there, whatever Kafka's committed
offsets say.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

from model_store import Registry
from stream.admin import TopicSpec, delete_topics, ensure_topics
from stream.producer import EventProducer
from stream.synthetic import SyntheticStream

pytestmark = pytest.mark.integration
N = 4000


@pytest.fixture()
def env(kafka, redis_service, unique, signing_key):
    topic = f"it-restart-{unique}"
    ensure_topics(kafka.address, [TopicSpec(topic, 3), TopicSpec(f"{topic}.dlq", 1)])
    values = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.address,
        "REDIS_URL": redis_service.address, "LIFELONG_PREFIX": f"it-restart-{unique}",
        "LIFELONG_TOPIC": topic, "LIFELONG_DLQ_TOPIC": f"{topic}.dlq",
        "LIFELONG_GROUP_ID": f"it-restart-{unique}", "LIFELONG_MODEL": "reco",
        "LIFELONG_SIGNING_KEY": signing_key,
    }
    values.pop("LIFELONG_SIGNING_KEY_FILE", None)
    yield values
    delete_topics(kafka.address, [topic, f"{topic}.dlq"])
    client = redis.Redis.from_url(redis_service.address)
    keys = list(client.scan_iter(f"it-restart-{unique}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _lifelong() -> str:
    exe = shutil.which("lifelong", path=str(Path(sys.executable).parent))
    assert exe
    return exe


def _produce(env: dict[str, str]) -> None:
    stream = SyntheticStream(n_events=N, drift_at=(), seed=5)
    with EventProducer(env["KAFKA_BOOTSTRAP_SERVERS"], env["LIFELONG_TOPIC"]) as producer:
        producer.send_all(stream.raw())


def _registry(env: dict[str, str]) -> Registry:
    return Registry.from_url(env["REDIS_URL"], prefix=env["LIFELONG_PREFIX"])


def _learn_to_the_end(env: dict[str, str]) -> None:
    proc = subprocess.run([_lifelong(), "learn", "--publish-every-events", "300",
                           "--idle-timeout", "6"], env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _assert_exactly_once(env: dict[str, str]) -> None:
    registry = _registry(env)
    latest = registry.latest("reco")
    assert latest is not None
    assert sum(latest.offsets.values()) == N
    # every event was learned exactly once by the model that survived the crash
    assert latest.extra["events_seen"] == N
    registry.close()


def test_kill_9_mid_stream_then_restart_learns_every_event_exactly_once(env):
    _produce(env)
    proc = subprocess.Popen([_lifelong(), "learn", "--publish-every-events", "300"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry = _registry(env)
    deadline = time.monotonic() + 60
    try:
        while len(registry.versions("reco")) < 3:
            assert proc.poll() is None, "the learner died by itself"
            assert time.monotonic() < deadline, "no versions published in time"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    killed_at = registry.latest("reco")
    assert killed_at is not None and killed_at.extra["events_seen"] < N
    registry.close()
    _learn_to_the_end(env)
    _assert_exactly_once(env)


def test_a_crash_between_publish_and_commit_does_not_relearn(env):
    _produce(env)
    _learn_to_the_end(env)
    _assert_exactly_once(env)
    # Simulate the window: Kafka's committed offsets lag behind the last published version
    topic, group = env["LIFELONG_TOPIC"], env["LIFELONG_GROUP_ID"]
    consumer = KafkaConsumer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], group_id=group,
                             enable_auto_commit=False)
    consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(0, "", -1) for p in range(3)})
    consumer.close()
    _learn_to_the_end(env)
    _assert_exactly_once(env)  # nothing was learned twice despite the rewound offsets
