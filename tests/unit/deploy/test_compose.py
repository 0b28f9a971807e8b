"""docker-compose.yml stays correct for users with Docker (no engine is needed to check it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lifelong.cli import app

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_pinned_images(compose):
    services = compose["services"]
    assert {"kafka", "redis", "prometheus", "grafana", "learner"} <= set(services)
    for name, svc in services.items():
        if "image" in svc:
            assert ":" in svc["image"] and not svc["image"].endswith(":latest"), name
    assert services["kafka"]["image"].split(":")[1].startswith("4."), "KRaft Kafka 4.x"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for dep in services["learner"]["depends_on"]:
        assert dep in services


def test_mounted_files_exist_and_prometheus_config_is_valid(compose):
    for svc in compose["services"].values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    result = subprocess.run([promtool, "check", "config",
                             str(ROOT / "deploy/compose/prometheus.yml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_learner_command_is_a_real_cli_command(compose):
    command = compose["services"]["learner"]["command"]
    assert command[0] == "lifelong"
    result = CliRunner().invoke(app, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_dockerfile_copies_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("stream", "consumers", "learning", "model_store", "monitoring", "lifelong",
                    "deploy"):
        assert f"COPY {package} {package}" in dockerfile


# -- valid for Compose v1 and v2; the host can reach Kafka; every process restarts ----------
# What both docker-compose 1.29 (v1) and Compose v2 accept: v1 refuses a top-level `name`.
TOP_LEVEL = {"version", "services", "volumes", "networks", "secrets", "configs"}
SERVICE_KEYS = {"build", "image", "command", "entrypoint", "environment", "env_file", "ports",
                "volumes", "depends_on", "healthcheck", "restart", "networks", "user",
                "working_dir", "labels", "logging", "deploy", "expose", "extra_hosts",
                "stop_grace_period", "stop_signal", "ulimits", "container_name", "hostname"}
RESTART = {"no", "always", "on-failure", "unless-stopped"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def _structural_check(compose: dict) -> list[str]:
    errors = [f"top-level {k!r} is not accepted by Compose v1" for k in compose
              if k not in TOP_LEVEL and not k.startswith("x-")]
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        errors += [f"{name}: unknown key {k!r}" for k in svc if k not in SERVICE_KEYS]
        if "image" not in svc and "build" not in svc:
            errors.append(f"{name}: neither image nor build")
        if svc.get("restart", "no") not in RESTART:
            errors.append(f"{name}: restart {svc['restart']!r}")
        deps = svc.get("depends_on") or {}
        for dep, spec in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            if dep not in compose["services"]:
                errors.append(f"{name}: depends on unknown {dep!r}")
            if spec and spec.get("condition") not in CONDITIONS:
                errors.append(f"{name}: depends_on {dep} condition {spec.get('condition')!r}")
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith(("./", "/")) and source not in declared:
                errors.append(f"{name}: volume {source!r} is not declared")
        for port in svc.get("ports", []):
            if not isinstance(port, str) or len(port.split(":")) != 3:
                errors.append(f"{name}: port {port!r} should be 'HOST_IP:HOST:CONTAINER'")
        env = svc.get("environment") or {}
        errors += [f"{name}: environment {k} is not a scalar" for k, v in env.items()
                   if isinstance(v, dict | list)]
    return errors


def _cli(*cmd: str) -> subprocess.CompletedProcess[str] | None:
    exe = shutil.which(cmd[0])
    if exe is None:
        return None
    env = {**os.environ, "LIFELONG_SIGNING_KEY": "k" * 32}
    try:
        done = subprocess.run([exe, *cmd[1:]], cwd=ROOT, capture_output=True, text=True,
                              env=env, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return None
    return done


def _compose_cli(*cmd: str) -> subprocess.CompletedProcess[str] | None:
    """Run ``cmd`` if that Compose CLI is installed (``docker compose version`` answers)."""
    probe = _cli(*cmd[:-4], "version") if cmd[0] == "docker" else _cli(cmd[0], "version")
    if probe is None or probe.returncode != 0:
        return None  # not installed (a docker CLI without the compose plugin)
    return _cli(*cmd)


def test_compose_file_is_valid_for_compose_v1_and_v2(compose, record_property):
    ran = []
    for cmd in (("docker", "compose", "-f", "docker-compose.yml", "config", "-q"),
                ("docker-compose", "-f", "docker-compose.yml", "config", "-q")):
        done = _compose_cli(*cmd)
        if done is not None:
            ran.append(" ".join(cmd[:2]))
            assert done.returncode == 0, done.stdout + done.stderr
    errors = _structural_check(compose)
    assert not errors, errors
    ran.append("structural check (Compose v1/v2 keys)")
    record_property("compose_validation", "; ".join(ran))
    print("compose validated with:", "; ".join(ran))


def test_the_structural_check_catches_what_v1_refuses(compose):
    broken = {**compose, "name": "lifelong",
              "services": {**compose["services"],
                           "x": {"image": "a:1", "restart": "sometimes", "volumes": ["nope:/d"],
                                 "depends_on": {"ghost": {"condition": "ready"}}}}}
    errors = " ".join(_structural_check(broken))
    for part in ("'name'", "restart 'sometimes'", "'nope' is not declared", "unknown 'ghost'",
                 "condition 'ready'"):
        assert part in errors


def test_kafka_advertises_a_host_listener_and_one_for_the_containers(compose):
    env = compose["services"]["kafka"]["environment"]
    advertised = dict(x.split("://") for x in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    host_port = advertised["HOST"]
    assert host_port == "127.0.0.1:9092"
    assert "127.0.0.1:9092:9092" in compose["services"]["kafka"]["ports"]
    inside = advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    for name in ("learner", "finetuner"):
        assert compose["services"][name]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == inside


def test_every_service_restarts_and_state_lives_in_volumes(compose):
    services = compose["services"]
    assert all(svc.get("restart") == "unless-stopped" for svc in services.values())
    mounts = {name: [v.split(":")[1] for v in svc.get("volumes", [])]
              for name, svc in services.items()}
    assert "/var/lib/kafka/data" in mounts["kafka"]
    assert services["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert "/prometheus" in mounts["prometheus"] and "/data" in mounts["redis"]
    assert {"kafka-data", "redis-data", "prometheus-data"} <= set(compose["volumes"])


def test_the_fine_tuner_runs_and_prometheus_scrapes_both_learners(compose):
    command = compose["services"]["finetuner"]["command"]
    assert CliRunner().invoke(app, [*command[1:], "--help"]).exit_code == 0
    prom = yaml.safe_load((ROOT / "deploy/compose/prometheus.yml").read_text())
    jobs = {c["job_name"]: c["static_configs"][0]["targets"] for c in prom["scrape_configs"]}
    assert jobs == {"lifelong-learner": ["learner:8000"], "lifelong-finetune": ["finetuner:8001"]}


def test_the_image_installs_cpu_torch_unless_told_otherwise():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in dockerfile
    assert dockerfile.index('--index-url "${TORCH_INDEX_URL}"') < dockerfile.index(
        "RUN pip install --no-cache-dir .")
