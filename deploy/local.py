"""The local launcher: reuse a running service we started, or start it detached and wait.

Each service (``deploy.kafka``, ``deploy.redis``, ``deploy.prometheus``) provides a
:class:`Launcher`; this module does the rest the same way for all of them: a file lock per
service, state in ``{home}/services/{name}.json``, a check that the ports are free, a
bounded wait for health, and on failure an error carrying the tail of the logs.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from deploy.base import LOOPBACK, Endpoint, Health, ServiceError, ServiceStatus
from deploy.process import (
    ProcessState,
    now_iso,
    pid_alive,
    port_free,
    port_owner,
    read_state,
    remove_state,
    spawn,
    stop,
    tail,
    write_state,
)

logger = logging.getLogger(__name__)


class Launcher(Protocol):
    """How to run one service locally; built from a home folder and the environment."""

    name: str
    address: str
    marker: str
    """Text found in the command line of the running process (guards against pid reuse)."""
    ports: tuple[int, ...]
    startup_timeout_s: float
    workdir: Path
    stdout_log: Path
    log_files: tuple[Path, ...]

    def prepare(self) -> list[str]:
        """Write configuration, fetch what is missing; return the command to run."""
        ...

    def check(self) -> Health:
        """Probe the service at :attr:`address` once."""
        ...


def ensure(launcher: Launcher, home: Path, *, start: bool = True) -> Endpoint:
    """Return the endpoint of the local service, starting it when ``start`` and needed."""
    name = launcher.name
    with _locked(home, name):
        state = read_state(home, name)
        if state is not None and pid_alive(state.pid, state.marker):
            return _reuse(launcher, state)
        if state is not None:
            logger.info("%s: pid %s from %s is gone; starting afresh", name, state.pid,
                        state.started)
            remove_state(home, name)
        if not start:
            raise ServiceError(name, f"not running; start it with `lifelong services up {name}`")
        return _start(launcher, home)


def stop_local(home: Path, name: str) -> bool:
    """Stop the process the local launcher started for ``name``; whether one ran."""
    with _locked(home, name):
        state = read_state(home, name)
        if state is None:
            return False
        stopped = stop(state.pid, state.marker)
        remove_state(home, name)
        if stopped:
            logger.info("%s: stopped pid %s", name, state.pid)
        return stopped


def local_status(launcher: Launcher, home: Path) -> ServiceStatus:
    """Status of the local service (not running counts as unhealthy)."""
    state = read_state(home, launcher.name)
    if state is None or not pid_alive(state.pid, state.marker):
        return ServiceStatus(launcher.name, launcher.address, "local", False, "not running")
    health = launcher.check()
    return ServiceStatus(launcher.name, state.address, "local", health.ok,
                         f"pid {state.pid}; {health.detail}")


def _reuse(launcher: Launcher, state: ProcessState) -> Endpoint:
    name = launcher.name
    if state.address != launcher.address:
        raise ServiceError(name, f"already running at {state.address} (pid {state.pid}) but "
                                 f"configured for {launcher.address}; run "
                                 f"`lifelong services down {name}` first")
    health = _wait_healthy(launcher, state.pid, state.marker, launcher.startup_timeout_s)
    if not health.ok:
        raise ServiceError(name, f"running (pid {state.pid}) but unhealthy: {health.detail}"
                                 f"{_log_tails(launcher)}")
    logger.debug("%s: reusing pid %s at %s", name, state.pid, state.address)
    return Endpoint(name, state.address, "local")


def _start(launcher: Launcher, home: Path) -> Endpoint:
    name = launcher.name
    for port in launcher.ports:
        if not port_free(port, LOOPBACK):
            owner = port_owner(port) or "a process"
            raise ServiceError(name, f"port {port} on {LOOPBACK} is taken by {owner}, which "
                                     f"lifelong did not start from {home} (no live state "
                                     f"there); stop it (if it is a lifelong service of another "
                                     f"LIFELONG_HOME, `lifelong services down` with that home) "
                                     f"or set LIFELONG_{name.upper()}_PORT")
    argv = launcher.prepare()
    marker = launcher.marker
    logger.info("%s: starting on %s (logs in %s)", name, launcher.address, launcher.workdir)
    started = time.monotonic()
    pid = spawn(argv, stdout_log=launcher.stdout_log, cwd=launcher.workdir)
    write_state(home, ProcessState(name, pid, launcher.address, str(launcher.log_files[0]),
                                   marker, now_iso()))
    # our own child: no pid-reuse check (its command line is briefly empty after exec)
    health = _wait_healthy(launcher, pid, None, launcher.startup_timeout_s)
    if not health.ok:
        stop(pid, None, timeout=10)
        remove_state(home, name)
        raise ServiceError(name, f"did not become healthy within "
                                 f"{launcher.startup_timeout_s:.0f} s: {health.detail}"
                                 f"{_log_tails(launcher)}")
    logger.info("%s: ready at %s in %.1f s (pid %s)", name, launcher.address,
                time.monotonic() - started, pid)
    return Endpoint(name, launcher.address, "local")


def _wait_healthy(launcher: Launcher, pid: int, marker: str | None, timeout: float,
                  ) -> Health:
    deadline = time.monotonic() + timeout
    health = Health(False, "not checked")
    while True:
        if not pid_alive(pid, marker):
            return Health(False, f"process {pid} exited ({health.detail})")
        health = launcher.check()
        if health.ok or time.monotonic() >= deadline:
            return health
        time.sleep(0.5)


def _log_tails(launcher: Launcher) -> str:
    parts = []
    for path in dict.fromkeys((*launcher.log_files, launcher.stdout_log)):
        text = tail(Path(path))
        if text.strip():
            parts.append(f"\n--- last lines of {path}:\n{text}")
    return "".join(parts) or "\n(no log output)"


@contextmanager
def _locked(home: Path, name: str) -> Iterator[None]:
    lock = home / "services" / f".{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
