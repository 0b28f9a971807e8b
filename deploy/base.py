"""Shared vocabulary of ``deploy``: service names, endpoints, errors, home and ports."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SERVICES: tuple[str, ...] = ("kafka", "redis", "prometheus")
"""The services ``deploy`` knows, in start order."""

ENV_VARS: Mapping[str, str] = {
    "kafka": "KAFKA_BOOTSTRAP_SERVERS",
    "redis": "REDIS_URL",
    "prometheus": "PROMETHEUS_URL",
}
"""Environment variable that points each service at an existing server."""

DEFAULT_PORTS: Mapping[str, int] = {"kafka": 39092, "redis": 36379, "prometheus": 39090}
"""Loopback ports of the local launchers (``LIFELONG_<NAME>_PORT`` overrides)."""

LOOPBACK = "127.0.0.1"


class ServiceError(Exception):
    """A service could not be found, started or reached; the message names it and says why.

    >>> str(ServiceError("kafka", "java not found on PATH"))
    'kafka: java not found on PATH'
    """

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


@dataclass(frozen=True)
class Endpoint:
    """Where a service answers, and which path of the resolution order produced it.

    ``address`` is the bootstrap servers for Kafka (``127.0.0.1:39092``), a URL for Redis
    (``redis://127.0.0.1:36379/0``) and Prometheus (``http://127.0.0.1:39090``). ``origin``
    is ``env``, ``testcontainers`` or ``local``.

    >>> Endpoint("redis", "redis://127.0.0.1:36379/0", "local").origin
    'local'
    """

    name: str
    address: str
    origin: str


@dataclass(frozen=True)
class ServiceStatus:
    """Health of one service as seen now.

    >>> ServiceStatus("redis", "redis://127.0.0.1:36379/0", "local", True, "redis 7").healthy
    True
    """

    name: str
    address: str
    origin: str
    healthy: bool
    detail: str


@dataclass(frozen=True)
class Health:
    """Outcome of one health check: ``ok`` and a human-readable ``detail``.

    >>> Health(False, "connection refused")
    Health(ok=False, detail='connection refused')
    """

    ok: bool
    detail: str


def check_name(name: str) -> str:
    """Return ``name`` if it is a known service, else raise :class:`ServiceError`.

    >>> check_name("redis")
    'redis'
    """
    if name not in SERVICES:
        raise ServiceError(name, f"unknown service; known: {', '.join(SERVICES)}")
    return name


def lifelong_home(environ: Mapping[str, str] | None = None) -> Path:
    """Home of the local services: ``$LIFELONG_HOME``, else ``$XDG_CACHE_HOME/lifelong``.

    Falls back to ``~/.cache/lifelong``. The folder is not created here.

    >>> lifelong_home({"LIFELONG_HOME": "/srv/ll"})
    PosixPath('/srv/ll')
    >>> lifelong_home({"XDG_CACHE_HOME": "/c"})
    PosixPath('/c/lifelong')
    """
    env = os.environ if environ is None else environ
    if env.get("LIFELONG_HOME"):
        return Path(env["LIFELONG_HOME"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "lifelong"
    return Path("~/.cache/lifelong").expanduser()


def service_port(name: str, environ: Mapping[str, str] | None = None) -> int:
    """Loopback port of a local service: ``LIFELONG_<NAME>_PORT`` or the default.

    >>> service_port("redis", {})
    36379
    >>> service_port("kafka", {"LIFELONG_KAFKA_PORT": "19092"})
    19092
    """
    env = os.environ if environ is None else environ
    var = f"LIFELONG_{check_name(name).upper()}_PORT"
    raw = env.get(var)
    if not raw:
        return DEFAULT_PORTS[name]
    try:
        port = int(raw)
    except ValueError:
        raise ServiceError(name, f"{var}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ServiceError(name, f"{var}={port} is outside 1..65535")
    return port


def redact(address: str) -> str:
    """``address`` with any password replaced by ``***``, for printing and logging.

    >>> redact("rediss://app:s3cret@10.0.0.1:6379/0?ssl_ca_certs=/ca.crt")
    'rediss://app:***@10.0.0.1:6379/0?ssl_ca_certs=/ca.crt'
    >>> redact("127.0.0.1:39092")
    '127.0.0.1:39092'
    """
    parts = urlsplit(address)
    if not parts.scheme or parts.password is None:
        return address
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))
