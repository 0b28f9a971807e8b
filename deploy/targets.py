"""Scrape targets owned by a process: removed on clean exit, expired when the owner is gone.

A learner registers its /metrics address as a file_sd target (``{dir}/{job}.json``) so
Prometheus scrapes it. Beside it, ``{dir}/{job}.owner`` (not matched by ``*.json``) records
the owner's pid and host, and its modification time is the owner's heartbeat, renewed every
``heartbeat_s`` by a daemon thread. A target is stale when its owner is a dead pid on this
host, or its heartbeat is older than ``ttl_s`` (an owner in another host or container that
died); :func:`prune_targets` removes stale ones. Every registration and every heartbeat
prunes, so a learner that exits cleanly removes its target at once (``close``, or at
interpreter exit) and one killed with SIGKILL disappears at the next registration or
heartbeat of any lifelong process, or after ``ttl_s``. Targets with no owner file (written
by hand) are never touched.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> with ScrapeTarget(folder, "learner-reco", "127.0.0.1:8000", heartbeat_s=60) as target:
...     sorted(p.name for p in folder.iterdir())
['learner-reco.json', 'learner-reco.owner']
>>> sorted(folder.iterdir())
[]
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from deploy.process import write_atomic
from deploy.prometheus import check_job, file_sd

__all__ = ["HEARTBEAT_S", "TTL_S", "ScrapeTarget", "prune_targets"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
TTL_S = 90.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def prune_targets(directory: Path, *, ttl_s: float = TTL_S, now: float | None = None,
                  host: str | None = None) -> list[str]:
    """Remove the targets whose owner is gone; return their job names."""
    now = time.time() if now is None else now
    host = socket.gethostname() if host is None else host
    removed = []
    for owner_file in sorted(directory.glob("*.owner")):
        owner = _owner(owner_file)
        try:
            beat = owner_file.stat().st_mtime
        except OSError:
            continue
        pid = owner.get("pid") if owner else None
        dead = owner is not None and owner.get("host") == host and isinstance(pid, int) \
            and not _alive(pid)
        if dead or now - beat > ttl_s:
            job = owner_file.stem
            (directory / f"{job}.json").unlink(missing_ok=True)
            owner_file.unlink(missing_ok=True)
            removed.append(job)
            log.info("prometheus: removed the stale scrape target %s (%s)", job,
                     "owner gone" if dead else f"no heartbeat for {now - beat:.0f} s")
    return removed


class ScrapeTarget:
    """The scrape target ``job`` -> ``target`` of this process: written, kept alive, removed.

    :meth:`close` (also run at interpreter exit) removes the target if this process still
    owns it (another process may have registered the same job since).
    """

    def __init__(self, directory: Path, job: str, target: str,
                 labels: Mapping[str, str] | None = None, *, heartbeat_s: float = HEARTBEAT_S,
                 ttl_s: float = TTL_S):
        self.directory = Path(directory)
        self.job = check_job(job)
        self.target = target
        self.heartbeat_s = heartbeat_s
        self.ttl_s = ttl_s
        self.path = self.directory / f"{job}.json"
        self._owner_path = self.directory / f"{job}.owner"
        self._me = {"pid": os.getpid(), "host": socket.gethostname()}
        prune_targets(self.directory, ttl_s=ttl_s)
        text = file_sd(job, target, labels)  # validates before anything is written
        write_atomic(self._owner_path, json.dumps(self._me) + "\n")
        write_atomic(self.path, text)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"scrape-target-{job}",
                                        daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                if self._mine():
                    os.utime(self._owner_path)
                prune_targets(self.directory, ttl_s=self.ttl_s)
            except OSError as exc:
                log.warning("prometheus: heartbeat of scrape target %s failed: %s", self.job,
                            exc)

    def _mine(self) -> bool:
        return _owner(self._owner_path) == self._me

    def close(self) -> None:
        """Stop the heartbeat and remove the target (only if this process still owns it)."""
        if self._stop.is_set():
            return
        self._stop.set()
        atexit.unregister(self.close)
        if self._mine():
            self.path.unlink(missing_ok=True)
            self._owner_path.unlink(missing_ok=True)
            log.info("prometheus: removed scrape target %s", self.job)

    def __enter__(self) -> ScrapeTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
