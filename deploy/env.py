"""Shell ``export`` lines for resolved endpoints, and the ``{home}/services/env`` file."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path

from deploy.base import ENV_VARS, Endpoint
from deploy.process import write_atomic
from deploy.prometheus import TARGETS_DIR_VAR


def export_lines(endpoints: Iterable[Endpoint], *, home: Path | None = None) -> str:
    """``export VAR=address`` lines, one per endpoint, for a POSIX shell.

    Given ``home``, a Prometheus that lifelong runs (not ``env``) also gets
    ``LIFELONG_PROMETHEUS_TARGETS_DIR``, so that a shell which sources the lines (and so
    has ``PROMETHEUS_URL``) still adds scrape targets where that Prometheus looks.

    >>> print(export_lines([Endpoint("kafka", "127.0.0.1:39092", "local"),
    ...                     Endpoint("redis", "redis://127.0.0.1:36379/0", "local")]))
    export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:39092
    export REDIS_URL=redis://127.0.0.1:36379/0
    """
    lines = []
    for ep in endpoints:
        lines.append(f"export {ENV_VARS[ep.name]}={shlex.quote(ep.address)}")
        if ep.name == "prometheus" and ep.origin != "env" and home is not None:
            targets = shlex.quote(str(home / "prometheus" / "targets"))
            lines.append(f"export {TARGETS_DIR_VAR}={targets}")
    return "\n".join(lines)


def env_file(home: Path) -> Path:
    """Path of the file that shells can ``source``.

    >>> env_file(Path("/h"))
    PosixPath('/h/services/env')
    """
    return home / "services" / "env"


def write_env_file(home: Path, endpoints: Iterable[Endpoint]) -> Path:
    """Merge the endpoints' export lines into ``{home}/services/env`` (atomically).

    Lines for services not in ``endpoints`` are kept, so ``up redis`` does not forget Kafka.
    """
    path = env_file(home)
    lines: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("export ") and "=" in line:
                lines[line[len("export "):].split("=", 1)[0]] = line
    for line in export_lines(endpoints, home=home).splitlines():
        lines[line[len("export "):].split("=", 1)[0]] = line
    header = "# Written by `lifelong services up`; use with: source " + shlex.quote(str(path))
    return write_atomic(path, "\n".join([header, *lines.values()]) + "\n")
