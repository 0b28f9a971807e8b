"""Real Kafka, Redis and Prometheus, as the conftest fixtures resolve them."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from prometheus_client import CollectorRegistry, Counter, start_http_server

from deploy import services
from deploy.base import Endpoint, ServiceError
from deploy.prometheus import PrometheusLauncher, validate_config

pytestmark = pytest.mark.integration


def test_kafka_python_speaks_to_the_pinned_broker(kafka: Endpoint, unique: str) -> None:
    topic, group = f"deploy-test-{unique}", f"deploy-test-group-{unique}"
    admin = KafkaAdminClient(bootstrap_servers=kafka.address, client_id=f"test-{unique}")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        admin.wait_for_topics([topic], timeout_ms=20_000)
        broker = admin.describe_cluster()["brokers"][0]["broker_id"]
        assert admin.get_broker_version_data(broker).broker_version >= (4, 0)

        producer = KafkaProducer(bootstrap_servers=kafka.address, acks="all",
                                 enable_idempotence=True, linger_ms=5)
        assert producer.config["api_version"] >= (4, 0)  # what the client negotiated
        try:
            for i in range(30):
                producer.send(topic, key=f"user-{i % 5}".encode(), value=f"event-{i}".encode())
            producer.flush(timeout=30)
        finally:
            producer.close()

        consumer = KafkaConsumer(topic, bootstrap_servers=kafka.address, group_id=group,
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        seen: list[bytes] = []
        try:
            deadline = time.monotonic() + 60
            while len(seen) < 30 and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=1000).values():
                    seen.extend(r.value for r in records)
            consumer.commit()
            committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3))
        finally:
            consumer.close()
        assert sorted(seen) == sorted(f"event-{i}".encode() for i in range(30))
        assert committed == 30
    finally:
        with contextlib.suppress(Exception):  # no group if the test failed early
            admin.delete_groups([group])
        admin.delete_topics([topic])
        admin.close()


def test_redis_ping_set_get(redis_service: Endpoint, unique: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_service.address)
    key = f"deploy-test:{unique}"
    try:
        assert client.ping()
        assert client.set(key, b"value", ex=60)
        assert client.get(key) == b"value"
    finally:
        client.delete(key)
        client.close()


def _query(prometheus: Endpoint, expr: str) -> list[dict]:
    url = f"{prometheus.address}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success"
    return body["data"]["result"]


def test_prometheus_scrapes_an_added_target(prometheus: Endpoint, unique: str) -> None:
    with urllib.request.urlopen(f"{prometheus.address}/-/ready", timeout=5) as resp:
        assert resp.status == 200
    registry = CollectorRegistry()
    counter = Counter("deploy_test_events", "Events counted by the deploy test.",
                      registry=registry)
    counter.inc(7)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    job = f"deploy-test-{unique}"
    path = services.add_scrape_target(job, f"127.0.0.1:{server.server_port}",
                                      labels={"suite": "deploy"})
    try:
        assert json.loads(Path(path).read_text())[0]["labels"]["job"] == job
        expr = f'deploy_test_events_total{{job="{job}",suite="deploy"}}'
        deadline, result = time.monotonic() + 30, []
        while time.monotonic() < deadline:
            result = _query(prometheus, expr)
            if result:
                break
            time.sleep(0.5)
        assert result, f"{expr} not scraped within 30 s"
        assert float(result[0]["value"][1]) == 7.0
    finally:
        services.remove_scrape_target(job)
        server.shutdown()
        thread.join(timeout=5)


def test_status_sees_every_resolved_service(kafka: Endpoint, redis_service: Endpoint,
                                            prometheus: Endpoint) -> None:
    statuses = {s.name: s for s in services.status()}
    for endpoint in (kafka, redis_service, prometheus):
        status = statuses[endpoint.name]
        assert (status.address, status.origin) == (endpoint.address, endpoint.origin)
        assert status.healthy, status.detail
    assert "4.3" in statuses["kafka"].detail or kafka.origin != "local"


def test_generated_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    launcher = PrometheusLauncher(tmp_path, {})
    argv = launcher.prepare()  # writes and validates the config with promtool
    assert argv[1] == f"--config.file={launcher.workdir / 'prometheus.yml'}"
    bad = tmp_path / "bad.yml"
    bad.write_text("global:\n  scrape_interval: soon\n")
    with pytest.raises(ServiceError, match="promtool rejected"):
        validate_config(bad)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def private_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home of its own, with Redis on a free port, stopped at the end."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("LIFELONG_REDIS_PORT", str(_free_port()))
    yield tmp_path
    services.down(["redis"], home=tmp_path)


def test_local_redis_is_detached_reused_and_persistent(private_redis: Path) -> None:
    import redis

    home = private_redis
    (endpoint,) = services.up(["redis"], home=home)
    assert endpoint.origin == "local"
    assert (home / "services" / "redis.json").exists()
    assert "REDIS_URL=" + endpoint.address in (home / "services" / "env").read_text()
    assert services.resolve("redis", home=home, start=False) == endpoint  # reused
    with redis.Redis.from_url(endpoint.address) as client:
        client.set("kept", b"across restarts")
    assert services.down(["redis"], home=home) == ["redis"]
    assert not (home / "services" / "redis.json").exists()
    with pytest.raises(ServiceError, match="not running"):
        services.resolve("redis", home=home, start=False)
    services.up(["redis"], home=home)
    with redis.Redis.from_url(endpoint.address) as client:
        assert client.get("kept") == b"across restarts"  # appendonly yes


def test_a_foreign_process_on_the_port_is_reported(private_redis: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        monkeypatch.setenv("LIFELONG_REDIS_PORT", str(port))
        with pytest.raises(ServiceError,
                           match=f"port {port} on 127.0.0.1 is taken by pid {os.getpid()} "):
            services.up(["redis"], home=private_redis)
