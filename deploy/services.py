"""Find or start Kafka, Redis and Prometheus: the entry point of ``deploy``.

Resolution order for each service:

1. an address in the environment (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``,
   ``PROMETHEUS_URL``): origin ``env``; it must answer, or :class:`ServiceError` names the
   variable;
2. a service the local launcher already runs (state file, live pid, healthy): origin
   ``local``. This comes before containers so that ``lifelong services up`` is honoured;
3. a container when a Docker engine answers (testcontainers, kept for the process
   lifetime): origin ``testcontainers``;
4. the local launcher starts the service detached, so it outlives this process: origin
   ``local``.

:func:`up` (the CLI's ``lifelong services up``) skips step 3: containers die with the
process that started them, and ``up`` is for services that later commands reuse. For a
Prometheus it runs (not one from ``PROMETHEUS_URL``, which loads its own rules), ``up`` also
installs the alert and recording rules packaged in ``monitoring/rules`` into
``{home}/prometheus/rules`` and reloads it. ``deploy`` imports only
:mod:`monitoring.rules` (stdlib only, no learner code) for that and passes its own rules
folder, so the launcher's layout is defined here alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from deploy.base import (
    ENV_VARS,
    SERVICES,
    Endpoint,
    ServiceError,
    ServiceStatus,
    check_name,
    lifelong_home,
)
from deploy.containers import POOL, docker_available
from deploy.env import export_lines, write_env_file
from deploy.health import CHECKS
from deploy.kafka import KafkaLauncher
from deploy.local import Launcher, ensure, local_status, stop_local
from deploy.prometheus import (
    PrometheusLauncher,
    reload,
    remove_target,
    rules_dir,
    targets_dir,
    write_target,
)
from deploy.redis import RedisLauncher
from deploy.targets import ScrapeTarget
from monitoring.rules import install_rules

__all__ = [
    "Endpoint",
    "ServiceError",
    "ServiceStatus",
    "add_scrape_target",
    "down",
    "export_lines",
    "launcher",
    "lifelong_home",
    "register_scrape_target",
    "remove_scrape_target",
    "resolve",
    "status",
    "up",
]

logger = logging.getLogger(__name__)


def launcher(name: str, home: Path, environ: Mapping[str, str] | None = None) -> Launcher:
    """The local launcher of service ``name`` under ``home``.

    >>> launcher("kafka", Path("/h"), {}).address
    '127.0.0.1:39092'
    """
    if check_name(name) == "kafka":
        return KafkaLauncher(home, environ)
    if name == "redis":
        return RedisLauncher(home, environ)
    return PrometheusLauncher(home, environ)


def from_env(name: str, environ: Mapping[str, str] | None = None) -> Endpoint | None:
    """The endpoint named by the service's environment variable, unchecked; else ``None``.

    >>> from_env("redis", {"REDIS_URL": "redis://cache:6379/0"})
    Endpoint(name='redis', address='redis://cache:6379/0', origin='env')
    >>> from_env("kafka", {}) is None
    True
    """
    env = os.environ if environ is None else environ
    address = env.get(ENV_VARS[check_name(name)], "").strip()
    return Endpoint(name, address, "env") if address else None


def resolve(name: str, *, home: Path | None = None, start: bool = True) -> Endpoint:
    """Find ``name`` (see the module docstring for the order), starting it if ``start``.

    With ``start=False`` nothing is started: a service that is not in the environment, not
    in a container of this process and not run by the local launcher is an error.
    """
    return _resolve(name, home or lifelong_home(), start=start, containers=start)


def up(names: Sequence[str] = SERVICES, *, home: Path | None = None) -> list[Endpoint]:
    """Make every named service available, starting local ones detached; write the env file.

    Returns the endpoints in the order given; ``{home}/services/env`` gets their exports.
    A Prometheus run here gets the packaged rules (see the module docstring).
    """
    home = home or lifelong_home()
    endpoints = []
    for name in names:
        own_prometheus = check_name(name) == "prometheus" and from_env(name) is None
        if own_prometheus:  # before a start, so that a fresh Prometheus reads them at once
            installed = install_rules(home, directory=rules_dir(home))
            logger.debug("prometheus: rules installed: %s", installed or "unchanged")
        endpoint = _resolve(name, home, start=True, containers=False)
        if own_prometheus:  # one that already ran re-reads its rule files
            reload(endpoint.address)
        endpoints.append(endpoint)
    path = write_env_file(home, endpoints)
    logger.info("services up; `source %s` exports their addresses", path)
    return endpoints


def down(names: Sequence[str] = SERVICES, *, home: Path | None = None) -> list[str]:
    """Stop what the local launcher started (data is kept); return the names it stopped."""
    home = home or lifelong_home()
    return [name for name in names if stop_local(home, check_name(name))]


def status(names: Sequence[str] = SERVICES, *, home: Path | None = None) -> list[ServiceStatus]:
    """Health of each named service, wherever it comes from; starts nothing."""
    home = home or lifelong_home()
    result = []
    for name in names:
        endpoint = from_env(name) or POOL.get(check_name(name))
        if endpoint is None:
            result.append(local_status(launcher(name, home), home))
            continue
        health = CHECKS[name](endpoint.address)
        result.append(ServiceStatus(name, endpoint.address, endpoint.origin, health.ok,
                                    health.detail))
    return result


def add_scrape_target(job: str, target: str, *, home: Path | None = None,
                      labels: dict[str, str] | None = None) -> Path:
    """Have Prometheus scrape ``target`` (``host:port``) as job ``job``; return the file.

    Writes ``{home}/prometheus/targets/{job}.json`` (file_sd), which the local or container
    Prometheus reads within a second. With ``PROMETHEUS_URL`` set, the file goes to
    ``$LIFELONG_PROMETHEUS_TARGETS_DIR`` (that Prometheus must use file_sd on it).
    """
    path = write_target(targets_dir(home or lifelong_home()), job, target, labels)
    logger.info("prometheus: scraping %s as job %r (%s)", target, job, path)
    return path


def register_scrape_target(job: str, target: str, *, home: Path | None = None,
                           labels: dict[str, str] | None = None) -> ScrapeTarget:
    """Like :func:`add_scrape_target`, but owned by this process.

    The target is removed when the process exits cleanly (or at
    :meth:`~deploy.targets.ScrapeTarget.close`) and expires when it dies
    (:mod:`deploy.targets`).
    """
    registration = ScrapeTarget(targets_dir(home or lifelong_home()), job, target, labels)
    logger.info("prometheus: scraping %s as job %r (%s)", target, job, registration.path)
    return registration


def remove_scrape_target(job: str, *, home: Path | None = None) -> None:
    """Stop scraping job ``job`` (removes its file_sd file; no error when absent)."""
    remove_target(targets_dir(home or lifelong_home()), job)


def _resolve(name: str, home: Path, *, start: bool, containers: bool) -> Endpoint:
    check_name(name)
    endpoint = from_env(name)
    if endpoint is not None:
        health = CHECKS[name](endpoint.address)
        if not health.ok:
            raise ServiceError(name, f"{ENV_VARS[name]}={endpoint.address} is set but not "
                                     f"reachable: {health.detail}")
        return endpoint
    endpoint = POOL.get(name)
    if endpoint is not None:
        return endpoint
    local = launcher(name, home)
    if containers:
        try:
            return ensure(local, home, start=False)
        except ServiceError as exc:
            logger.debug("%s: no local service to reuse (%s)", name, exc)
        if docker_available():
            return POOL.start(name, home)
    return ensure(local, home, start=start)
