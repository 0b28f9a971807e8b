"""A private redis-server (never the shared one) is killed and restarted under a subscriber."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry

from model_store import Registry, Signer
from model_store.subscriber import Subscriber
from tests.unit.model_store.conformance import KEY
from tests.unit.model_store.helpers import Const
from tests.unit.model_store.subscriber_conformance import eventually, failures

pytestmark = pytest.mark.integration


class PrivateRedis:
    """A throw-away redis-server on a free loopback port, with an fsync-always AOF."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is needed for the restart test", pytrace=False)
        self.binary = binary
        self.directory = directory
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        try:
            assert eventually(lambda: self._ping(client), timeout=10), "redis did not start"
        finally:
            client.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    @staticmethod
    def _ping(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.proc.terminate()
        server.proc.wait(10)


def test_subscriber_survives_a_redis_restart(private_redis: PrivateRedis) -> None:
    publisher = Registry.from_url(private_redis.url, signer=Signer(KEY))
    reader = Registry.from_url(private_redis.url, signer=Signer(KEY))
    metrics = CollectorRegistry()
    for i in range(3):
        publisher.publish_object("reco", Const(float(i + 1)))
    with Subscriber(reader, "reco", poll_interval=0.1, metrics_registry=metrics) as sub:
        assert sub.wait_for_version(3, timeout=5)
        private_redis.kill()
        assert eventually(lambda: failures(metrics, "reco", "connection") >= 1, timeout=20)
        assert sub.predict("u", "i") == 3.0  # keeps serving while Redis is down
        private_redis.start()
        v4 = publisher.publish_object("reco", Const(4.0))
        assert v4.number == 4  # the counter survived the restart (AOF)
        assert sub.wait_for_version(4, timeout=20)
        assert sub.predict("u", "i") == 4.0
    assert reader.read_blob("reco", 1)
    assert [v.number for v in reader.versions("reco")] == [1, 2, 3, 4]
    publisher.close()
    reader.close()
