"""docker-compose.yml stays correct for users with Docker (no engine is needed to check it)."""

from __future__ import annotations

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
