"""A private Kafka broker is stopped for ~15 s and started again under a running learner.

Never the shared broker: this test starts its own KRaft node on free loopback ports with
the launcher's code (``deploy.kafka``), reusing the jars the local launcher fetched, and
stops only that one. Redis is the shared one (a unique prefix).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from consumers.dlq import KafkaDeadLetters
from consumers.kafka_source import KafkaSource
from consumers.publisher import RegistryPublisher
from consumers.worker import LearnerWorker
from deploy.base import LOOPBACK
from deploy.health import check_kafka
from deploy.kafka import KafkaLauncher, lib_dir
from deploy.services import resolve
from learning.online import OnlineLearner
from model_store import Registry
from stream.admin import TopicSpec, ensure_topics
from stream.producer import EventProducer
from stream.schema import Event

pytestmark = pytest.mark.integration
N = 1500
OUTAGE_S = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class PrivateKafka:
    """One KRaft node under ``home``; :meth:`stop` and :meth:`start` keep its data."""

    def __init__(self, home: Path):
        shared = lib_dir(Path(os.environ.get("LIFELONG_HOME", Path.home() / ".lifelong")))
        if not (shared / ".complete").is_file():
            resolve("kafka")  # the local launcher fetches the jars once
        lib = lib_dir(home)
        lib.parent.mkdir(parents=True, exist_ok=True)
        if not lib.exists():
            lib.symlink_to(shared)
        port = _free_port()
        environ = {**os.environ, "LIFELONG_KAFKA_PORT": str(port),
                   "LIFELONG_KAFKA_CONTROLLER_PORT": str(_free_port())}
        self.launcher = KafkaLauncher(home, environ)
        self.address = self.launcher.address
        cmd = self.launcher.prepare()
        self.cmd = ["-Xmx512m" if c == "-Xmx1g" else c for c in cmd]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        log = open(self.launcher.workdir / "stdout.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"private kafka exited with {self.proc.returncode}", pytrace=False)
            if check_kafka(self.address, timeout_s=2.0).ok:
                return
            time.sleep(0.5)
        pytest.fail("private kafka did not start in time", pytrace=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture()
def private_kafka(tmp_path):
    broker = PrivateKafka(tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture()
def registry(redis_service, store_prefix):
    reg = Registry.from_url(redis_service.address, prefix=store_prefix)  # keys deleted after
    yield reg
    reg.close()


def _produce(address: str, topic: str, start: int, n: int) -> None:
    now = time.time()
    events = [Event(f"o{k}", f"u{k % 40}", f"i{k % 60}", "rating", float(k % 5 + 1),
                    now - 10_000 + k) for k in range(start, start + n)]
    with EventProducer(address, topic) as producer:
        producer.send_all(events)


@pytest.mark.timeout(400)
def test_a_broker_restart_under_the_learner_loses_nothing_and_learns_nothing_twice(
        private_kafka, registry, unique):
    topic = f"outage-{unique}"
    ensure_topics(private_kafka.address, [TopicSpec(topic, 2), TopicSpec(f"{topic}.dlq", 1)])
    _produce(private_kafka.address, topic, 0, N // 2)
    source = KafkaSource(private_kafka.address, [topic], f"outage-{unique}",
                         commit_retry_seconds=3.0)
    dlq = KafkaDeadLetters(private_kafka.address, f"{topic}.dlq")
    worker = LearnerWorker(source, OnlineLearner(), dlq,
                           publisher=RegistryPublisher(registry, "reco"),
                           publish_every_events=10**9, publish_every_seconds=2.0)
    stop, box = threading.Event(), {}

    def learn() -> None:
        try:
            box["stats"] = worker.run(stop=stop, max_events=N)
        except BaseException as exc:  # the test reports it
            box["error"] = exc

    thread = threading.Thread(target=learn, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while worker.stats.consumed < N // 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker.stats.consumed == N // 2, "the learner did not read the first half"
    private_kafka.stop()  # the next publish (<= 2 s) commits into the outage
    time.sleep(OUTAGE_S)
    assert thread.is_alive(), f"the learner died in the outage: {box.get('error')!r}"
    private_kafka.start()
    _produce(private_kafka.address, topic, N // 2, N - N // 2)
    thread.join(180)
    stop.set()
    thread.join(10)
    try:
        dlq.close()
    finally:
        source.close()
    assert "error" not in box, repr(box.get("error"))
    stats = box["stats"]
    assert (stats.consumed, stats.learned, stats.duplicates) == (N, N, 0)
    assert stats.commit_failures >= 1  # the outage was seen
    latest = registry.latest("reco")
    assert latest is not None and latest.extra["events_seen"] == N
    assert sum(latest.offsets.values()) == N
    seen = [v.extra["events_seen"] for v in registry.versions("reco")]
    assert seen == sorted(set(seen)), f"a state was published twice: {seen}"
