"""The packaged Prometheus rules and Grafana dashboards, and installing the rules.

The files ship inside the ``monitoring`` package (``rules/*.rules.yml``,
``dashboards/*.json``; ``rules/*.test.yml`` are promtool unit tests and are never installed).
This module knows nothing about how Prometheus runs: :func:`install_rules` copies the rule
files into a folder, by default the local launcher's ``{home}/prometheus/rules`` (the same
folder as :func:`deploy.prometheus.rules_dir`, which passes it explicitly).

>>> [p.name for p in rule_files()]
['lifelong.rules.yml']
>>> dashboard_path().name
'lifelong.json'
"""

from __future__ import annotations

import os
import tempfile
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = ["dashboard_files", "dashboard_path", "install_rules", "rule_files", "rules_path"]

RULES_SUFFIX = ".rules.yml"


def _folder(name: str) -> Traversable:
    return resources.files("monitoring").joinpath(name)


def rule_files() -> list[Traversable]:
    """The packaged rule files (``monitoring/rules/*.rules.yml``), sorted by name."""
    return sorted((f for f in _folder("rules").iterdir() if f.name.endswith(RULES_SUFFIX)),
                  key=lambda f: f.name)


def dashboard_files() -> list[Traversable]:
    """The packaged Grafana dashboards (``monitoring/dashboards/*.json``), sorted by name."""
    return sorted((f for f in _folder("dashboards").iterdir() if f.name.endswith(".json")),
                  key=lambda f: f.name)


def rules_path(name: str = "lifelong.rules.yml") -> Path:
    """Filesystem path of one packaged rule file (the package is installed unzipped).

    >>> rules_path().read_text().startswith("# Recording and alert rules")
    True
    """
    return Path(str(_folder("rules").joinpath(name)))


def dashboard_path(name: str = "lifelong.json") -> Path:
    """Filesystem path of one packaged dashboard (import it into any Grafana)."""
    return Path(str(_folder("dashboards").joinpath(name)))


def install_rules(home: Path, *, directory: Path | None = None) -> list[Path]:
    """Copy the packaged rule files into ``directory``; return the files that changed.

    ``directory`` defaults to ``{home}/prometheus/rules``, the folder whose ``*.yml`` the
    local Prometheus loads (at start and on ``POST /-/reload``). Files are written
    atomically and only when their content differs, so an empty list means no reload is
    needed.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     first = [p.name for p in install_rules(Path(tmp))]
    ...     again = install_rules(Path(tmp))
    >>> first, again
    (['lifelong.rules.yml'], [])
    """
    target = directory if directory is not None else Path(home) / "prometheus" / "rules"
    target.mkdir(parents=True, exist_ok=True)
    changed = []
    for source in rule_files():
        data = source.read_bytes()
        dest = target / source.name
        if dest.exists() and dest.read_bytes() == data:
            continue
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{source.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, dest)  # never a half-written file for a concurrent reload
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        changed.append(dest)
    return changed
