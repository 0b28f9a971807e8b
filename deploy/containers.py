"""Services in throw-away containers (testcontainers), used when a Docker engine answers.

Containers live as long as the Python process: each is started once (cached per process)
and removed at exit, by ``atexit`` and else by testcontainers' reaper (Ryuk). Images can
be overridden with ``LIFELONG_KAFKA_IMAGE``, ``LIFELONG_REDIS_IMAGE`` and
``LIFELONG_PROMETHEUS_IMAGE``. Set ``LIFELONG_NO_DOCKER=1`` to skip this path.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploy.base import Endpoint, ServiceError
from deploy.prometheus import prometheus_yml, rules_dir

logger = logging.getLogger(__name__)

IMAGES: Mapping[str, str] = {
    # Confluent Platform 8.x ships Apache Kafka 4.x (KRaft only), like the local launcher.
    "kafka": "confluentinc/cp-kafka:8.0.0",
    "redis": "redis:7.4",
    "prometheus": "prom/prometheus:v2.55.1",
}


def docker_available(environ: Mapping[str, str] | None = None, timeout_s: float = 3.0) -> bool:
    """Whether a Docker engine answers quickly (``docker info``), unless disabled by env."""
    env = os.environ if environ is None else environ
    if env.get("LIFELONG_NO_DOCKER", "").lower() in {"1", "true", "yes"}:
        return False
    if not env.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False  # fast path: no socket, no remote engine configured
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


class ContainerPool:
    """Containers started by this process, one per service, kept until the process exits.

    The pool is the one piece of process-wide state in ``deploy``: the brief of the
    testcontainers path is that a container outlives the call that started it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: dict[str, Endpoint] = {}

    def get(self, name: str) -> Endpoint | None:
        """The endpoint of the container started for ``name``, if any."""
        return self._endpoints.get(name)

    def start(self, name: str, home: Path) -> Endpoint:
        """Start a container for ``name`` unless one runs; return its endpoint."""
        with self._lock:
            if name in self._endpoints:
                return self._endpoints[name]
            try:
                endpoint = _start_container(name, home)
            except ServiceError:
                raise
            except Exception as exc:
                raise ServiceError(name, f"testcontainers could not start it: {exc!r}") from exc
            self._endpoints[name] = endpoint
            return endpoint


POOL = ContainerPool()


def _start_container(name: str, home: Path) -> Endpoint:
    image = os.environ.get(f"LIFELONG_{name.upper()}_IMAGE", IMAGES[name])
    logger.info("%s: starting container %s", name, image)
    container: Any
    if name == "kafka":
        from testcontainers.community.kafka import KafkaContainer

        container = KafkaContainer(image=image).with_kraft().start(timeout=120)
        address = container.get_bootstrap_server()
    elif name == "redis":
        from testcontainers.community.redis import RedisContainer

        container = RedisContainer(image=image).start()
        address = (f"redis://{container.get_container_host_ip()}:"
                   f"{container.get_exposed_port(6379)}/0")
    else:
        container = _start_prometheus(image, home)
        address = (f"http://{container.get_container_host_ip()}:"
                   f"{container.get_exposed_port(9090)}")
    atexit.register(_stop, name, container)
    logger.info("%s: container ready at %s", name, address)
    return Endpoint(name, address, "testcontainers")


def _start_prometheus(image: str, home: Path) -> Any:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    targets = home / "prometheus" / "targets"
    for folder in (targets, rules_dir(home)):
        folder.mkdir(parents=True, exist_ok=True)
    config = home / "services" / "prometheus" / "prometheus.container.yml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(prometheus_yml(targets_dir="/etc/lifelong/targets",
                                     rules_dir="/etc/lifelong/rules",
                                     rewrite_loopback_to_docker_host=True))
    container = (
        DockerContainer(image)
        .with_exposed_ports(9090)
        .with_volume_mapping(str(config), "/etc/prometheus/prometheus.yml", "ro")
        .with_volume_mapping(str(targets), "/etc/lifelong/targets", "ro")
        .with_volume_mapping(str(rules_dir(home)), "/etc/lifelong/rules", "ro")
        .with_command(["--config.file=/etc/prometheus/prometheus.yml",
                       "--web.enable-lifecycle", "--storage.tsdb.path=/prometheus"])
        .with_kwargs(extra_hosts={"host.docker.internal": "host-gateway"})
        .waiting_for(HttpWaitStrategy(9090, "/-/ready").with_startup_timeout(60))
    )
    return container.start()


def _stop(name: str, container: Any) -> None:
    try:
        container.stop()
    except Exception as exc:
        logger.debug("%s: stopping container failed: %s", name, exc)
