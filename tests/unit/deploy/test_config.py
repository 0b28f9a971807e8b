"""Pure parts of ``deploy``: generated configs, file_sd, env files, home, ports, resolution."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from deploy import containers, kafka, local, services
from deploy.base import Endpoint, Health, ServiceError, lifelong_home, service_port
from deploy.env import export_lines, write_env_file
from deploy.process import ProcessState, pid_alive, port_free, read_state, write_state
from deploy.prometheus import file_sd, prometheus_yml, remove_target, targets_dir, write_target
from deploy.redis import RedisLauncher, redis_conf

SERVICE_VARS = ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "PROMETHEUS_URL",
                "LIFELONG_PROMETHEUS_TARGETS_DIR", "LIFELONG_KAFKA_PORT",
                "LIFELONG_KAFKA_CONTROLLER_PORT", "LIFELONG_REDIS_PORT",
                "LIFELONG_PROMETHEUS_PORT")


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in SERVICE_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


# --- Kafka ------------------------------------------------------------------------------

def test_server_properties_single_kraft_node_on_loopback(tmp_path: Path) -> None:
    props = _props(kafka.server_properties(port=1234, controller_port=1235, data_dir=tmp_path))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:1235"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:1234,CONTROLLER://127.0.0.1:1235"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:1234"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path)
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr"):
        assert props[key] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "3"
    assert props["auto.create.topics.enable"] == "true"


def test_log4j2_config_logs_info_to_file_and_only_errors_to_console(tmp_path: Path) -> None:
    root = ET.fromstring(kafka.log4j2_xml(tmp_path / "a&b"))
    rolling = root.find("Appenders/RollingFile")
    assert rolling is not None
    assert rolling.get("fileName") == str(tmp_path / "a&b" / "server.log")
    threshold = root.find("Appenders/Console/ThresholdFilter")
    assert threshold is not None and threshold.get("level") == "ERROR"
    logger_root = root.find("Loggers/Root")
    assert logger_root is not None and logger_root.get("level") == "INFO"


def test_cluster_id_is_16_random_bytes_in_urlsafe_base64() -> None:
    ids = {kafka.new_cluster_id(random.Random(seed)) for seed in range(50)}
    assert len(ids) == 50
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_jars_are_not_fetched_again_when_marker_matches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = kafka.lib_dir(tmp_path)
    lib.mkdir(parents=True)
    digest = hashlib.sha256(kafka.POM.read_bytes()).hexdigest()
    (lib / kafka.COMPLETE).write_text(f"{digest} 46 jars\n")
    monkeypatch.setattr(kafka.shutil, "which", lambda _: pytest.fail("mvn must not run"))
    assert kafka.ensure_jars(tmp_path) == lib


def test_missing_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka.shutil, "which", lambda _: None)
    with pytest.raises(ServiceError, match=r"kafka: .*mvn is not on PATH"):
        kafka.ensure_jars(tmp_path)


def test_missing_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka.shutil, "which", lambda _: None)
    with pytest.raises(ServiceError, match=r"^kafka: java not found on PATH; install OpenJDK 17"):
        kafka.find_java({})


def test_pom_binds_slf4j_1_7_to_log4j2() -> None:
    pom = kafka.POM.read_text()
    assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom
    assert "log4j-slf4j2-impl" not in pom.split("-->")[-1]


# --- Redis and Prometheus ----------------------------------------------------------------

def test_redis_conf_persists_and_binds_loopback(tmp_path: Path) -> None:
    conf = redis_conf(port=4242, data_dir=tmp_path / "d", log_file=tmp_path / "r.log")
    lines = dict(line.split(" ", 1) for line in conf.splitlines() if not line.startswith("#"))
    assert lines["port"] == "4242" and lines["bind"] == "127.0.0.1"
    assert lines["appendonly"] == "yes" and lines["daemonize"] == "no"
    assert lines["dir"] == f'"{tmp_path / "d"}"'
    assert lines["logfile"] == f'"{tmp_path / "r.log"}"'


def test_prometheus_config_watches_targets_and_rules() -> None:
    text = prometheus_yml(targets_dir="/t", rules_dir="/r")
    assert "scrape_interval: 1s" in text and "evaluation_interval: 1s" in text
    assert '- "/t/*.json"' in text and '- "/r/*.yml"' in text
    assert "refresh_interval: 1s" in text and "relabel_configs" not in text
    docker = prometheus_yml(targets_dir="/t", rules_dir="/r", rewrite_loopback_to_docker_host=True)
    assert "host.docker.internal:$1" in docker


def test_file_sd_entry_carries_job_and_labels() -> None:
    entry = json.loads(file_sd("learner", "127.0.0.1:8000", {"model": "reco"}))
    assert entry == [{"targets": ["127.0.0.1:8000"],
                      "labels": {"job": "learner", "model": "reco"}}]


@pytest.mark.parametrize(("job", "target"), [("bad job", "127.0.0.1:1"), ("../x", "h:1"),
                                             ("ok", "no-port"), ("ok", "http://h:1")])
def test_file_sd_rejects_bad_names(job: str, target: str) -> None:
    with pytest.raises(ServiceError, match=r"^prometheus: "):
        file_sd(job, target)


def test_targets_are_written_atomically_and_removed(tmp_path: Path) -> None:
    path = write_target(tmp_path, "job-1", "127.0.0.1:9")
    assert path == tmp_path / "job-1.json"
    assert json.loads(path.read_text())[0]["targets"] == ["127.0.0.1:9"]
    write_target(tmp_path, "job-1", "127.0.0.1:10")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job-1.json"]  # no temp file left
    remove_target(tmp_path, "job-1")
    remove_target(tmp_path, "job-1")  # idempotent
    assert list(tmp_path.iterdir()) == []


def test_external_prometheus_needs_a_targets_dir(tmp_path: Path, clean_env) -> None:
    clean_env.setenv("PROMETHEUS_URL", "http://prom.example:9090")
    with pytest.raises(ServiceError, match="LIFELONG_PROMETHEUS_TARGETS_DIR"):
        services.add_scrape_target("x", "127.0.0.1:1", home=tmp_path)
    clean_env.setenv("LIFELONG_PROMETHEUS_TARGETS_DIR", str(tmp_path / "sd"))
    path = services.add_scrape_target("x", "127.0.0.1:1", home=tmp_path, labels={"a": "b"})
    assert path == tmp_path / "sd" / "x.json"
    services.remove_scrape_target("x", home=tmp_path)
    assert not path.exists()


def test_local_targets_dir_is_under_home(tmp_path: Path) -> None:
    assert targets_dir(tmp_path, {}) == tmp_path / "prometheus" / "targets"


# --- home, ports, env file, state --------------------------------------------------------

def test_home_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LIFELONG_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert lifelong_home() == tmp_path / ".cache" / "lifelong"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert lifelong_home() == tmp_path / "xdg" / "lifelong"
    monkeypatch.setenv("LIFELONG_HOME", str(tmp_path / "ll"))
    assert lifelong_home() == tmp_path / "ll"


def test_ports_default_and_override() -> None:
    assert [service_port(n, {}) for n in ("kafka", "redis", "prometheus")] == [39092, 36379,
                                                                               39090]
    assert service_port("prometheus", {"LIFELONG_PROMETHEUS_PORT": "1"}) == 1
    with pytest.raises(ServiceError, match="LIFELONG_REDIS_PORT"):
        service_port("redis", {"LIFELONG_REDIS_PORT": "nope"})
    with pytest.raises(ServiceError, match="unknown service"):
        service_port("zookeeper", {})


def test_kafka_controller_port_follows_broker_port() -> None:
    launcher = kafka.KafkaLauncher(Path("/h"), {"LIFELONG_KAFKA_PORT": "19092"})
    assert launcher.ports == (19092, 19093) and launcher.address == "127.0.0.1:19092"


def test_env_file_merges_exports(tmp_path: Path) -> None:
    kafka_ep = Endpoint("kafka", "127.0.0.1:39092", "local")
    redis_ep = Endpoint("redis", "redis://127.0.0.1:36379/0", "local")
    assert export_lines([kafka_ep]) == "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:39092"
    write_env_file(tmp_path, [kafka_ep])
    path = write_env_file(tmp_path, [redis_ep, Endpoint("redis", "redis://h:1/0", "env")])
    exports = [ln for ln in path.read_text().splitlines() if ln.startswith("export ")]
    assert exports == ["export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:39092",
                       "export REDIS_URL=redis://h:1/0"]


def test_sourced_env_keeps_scrape_targets_working(tmp_path: Path, clean_env) -> None:
    prom = Endpoint("prometheus", "http://127.0.0.1:39090", "local")
    text = write_env_file(tmp_path, [prom]).read_text()
    targets = tmp_path / "prometheus" / "targets"
    assert f"export LIFELONG_PROMETHEUS_TARGETS_DIR={targets}" in text
    clean_env.setenv("PROMETHEUS_URL", prom.address)  # as after `source services/env`
    clean_env.setenv("LIFELONG_PROMETHEUS_TARGETS_DIR", str(targets))
    assert services.add_scrape_target("j", "127.0.0.1:1", home=tmp_path).parent == targets
    assert "TARGETS_DIR" not in export_lines([Endpoint("prometheus", "http://p:1", "env")],
                                             home=tmp_path)


def test_state_round_trip_and_liveness(tmp_path: Path) -> None:
    state = ProcessState("redis", os.getpid(), "redis://x", "/l", "pytest", "now")
    write_state(tmp_path, state)
    assert read_state(tmp_path, "redis") == state
    assert read_state(tmp_path, "kafka") is None
    (tmp_path / "services" / "kafka.json").write_text("{not json")
    assert read_state(tmp_path, "kafka") is None
    assert pid_alive(os.getpid())
    assert not pid_alive(os.getpid(), marker="no-such-marker-in-cmdline-xyz")
    assert not pid_alive(2**22 + 12345)


def test_port_free_detects_listener() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not port_free(sock.getsockname()[1])


# --- resolution order ---------------------------------------------------------------------

def _no_local(*_args, **_kwargs):
    pytest.fail("the local launcher must not be used")


def test_env_address_wins_and_is_health_checked(clean_env, tmp_path: Path) -> None:
    clean_env.setenv("REDIS_URL", "redis://cache.example:6379/0")
    clean_env.setattr(services, "ensure", _no_local)
    clean_env.setattr(services, "docker_available", lambda: pytest.fail("no docker probe"))
    clean_env.setitem(services.CHECKS, "redis", lambda _a: Health(True, "ok"))
    assert services.resolve("redis", home=tmp_path) == Endpoint(
        "redis", "redis://cache.example:6379/0", "env")
    clean_env.setitem(services.CHECKS, "redis", lambda _a: Health(False, "refused"))
    with pytest.raises(ServiceError, match=r"^redis: REDIS_URL=redis://cache.example.* refused"):
        services.resolve("redis", home=tmp_path)


def test_unreachable_env_kafka_names_the_variable(clean_env, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    with pytest.raises(ServiceError, match=r"^kafka: KAFKA_BOOTSTRAP_SERVERS=.* not reachable"):
        services.resolve("kafka", home=tmp_path)


def test_containers_come_before_starting_locally(clean_env, tmp_path: Path) -> None:
    calls: list[tuple[str, bool]] = []

    def fake_ensure(launcher: local.Launcher, home: Path, *, start: bool = True) -> Endpoint:
        calls.append((launcher.name, start))
        raise ServiceError(launcher.name, "not running")

    clean_env.setattr(services, "ensure", fake_ensure)
    clean_env.setattr(services, "docker_available", lambda: True)
    clean_env.setattr(containers.POOL, "start",
                      lambda name, home: Endpoint(name, "h:1", "testcontainers"))
    assert services.resolve("kafka", home=tmp_path).origin == "testcontainers"
    assert calls == [("kafka", False)]  # only asked whether a local one already runs


def test_without_docker_the_local_launcher_starts(clean_env, tmp_path: Path) -> None:
    started: list[bool] = []

    def fake_ensure(launcher: local.Launcher, home: Path, *, start: bool = True) -> Endpoint:
        started.append(start)
        if not start:
            raise ServiceError(launcher.name, "not running")
        return Endpoint(launcher.name, launcher.address, "local")

    clean_env.setattr(services, "ensure", fake_ensure)
    clean_env.setattr(services, "docker_available", lambda: False)
    assert services.resolve("redis", home=tmp_path) == Endpoint(
        "redis", "redis://127.0.0.1:36379/0", "local")
    assert started == [False, True]
    with pytest.raises(ServiceError, match="not running"):
        services.resolve("redis", home=tmp_path, start=False)


def test_start_false_never_starts(clean_env, tmp_path: Path) -> None:
    clean_env.setattr(services, "docker_available", lambda: pytest.fail("no docker probe"))
    with pytest.raises(ServiceError, match=r"^prometheus: not running; start it with"):
        services.resolve("prometheus", home=tmp_path, start=False)
    assert not (tmp_path / "services" / "prometheus.json").exists()


def test_docker_probe_can_be_disabled_and_needs_an_engine(tmp_path: Path) -> None:
    assert not containers.docker_available({"LIFELONG_NO_DOCKER": "1"})
    assert not containers.docker_available({"DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
                                           timeout_s=5)


def test_status_reports_a_stopped_local_service(clean_env, tmp_path: Path) -> None:
    (status,) = services.status(["redis"], home=tmp_path)
    assert (status.name, status.origin, status.healthy) == ("redis", "local", False)
    assert status.detail == "not running"
    assert services.down(["redis"], home=tmp_path) == []
    assert RedisLauncher(tmp_path, {}).address == status.address
