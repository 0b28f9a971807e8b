"""Detached local processes: spawn, state files, liveness, ports, stop, log tails."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessState:
    """What the launcher remembers about a process it started (``services/{name}.json``).

    ``marker`` is a string that must appear in the process's command line, so that a pid
    reused by an unrelated process is not taken for ours.

    >>> s = ProcessState("redis", 42, "redis://127.0.0.1:36379/0", "/h/r.log", "/h/r.conf",
    ...                  "2025-01-01T00:00:00+00:00")
    >>> ProcessState.from_json(s.to_json()) == s
    True
    """

    name: str
    pid: int
    address: str
    log: str
    marker: str
    started: str

    def to_json(self) -> str:
        """Serialise to JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProcessState:
        """Parse what :meth:`to_json` wrote."""
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def state_path(home: Path, name: str) -> Path:
    """Path of the state file of service ``name``.

    >>> state_path(Path("/h"), "kafka")
    PosixPath('/h/services/kafka.json')
    """
    return home / "services" / f"{name}.json"


def read_state(home: Path, name: str) -> ProcessState | None:
    """The recorded state of ``name``, or ``None`` when absent or unreadable."""
    path = state_path(home, name)
    try:
        return ProcessState.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring unreadable state file %s: %s", path, exc)
        return None


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_state(home: Path, state: ProcessState) -> Path:
    """Record ``state`` atomically."""
    return write_atomic(state_path(home, state.name), state.to_json() + "\n")


def remove_state(home: Path, name: str) -> None:
    """Forget the state of ``name``."""
    state_path(home, name).unlink(missing_ok=True)


def pid_alive(pid: int, marker: str | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, given ``marker``, its command line has it."""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our exited child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path("/proc") / str(pid)
    if not proc.exists():
        return True  # no procfs: trust kill(0)
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}:
            return False
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    # an empty command line (a process in the middle of exec) cannot be checked
    return marker is None or not cmdline.strip() or marker in cmdline


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be bound now (nothing listens there).

    >>> with socket.socket() as s:
    ...     s.bind(("127.0.0.1", 0)); s.listen(); port_free(s.getsockname()[1])
    False
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_owner(port: int) -> str | None:
    """Best effort (Linux procfs): ``pid N (command line)`` of the process listening on ``port``.

    ``None`` when it cannot be told (no procfs, another user's process, nothing listens).
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[1].endswith(f":{port:04X}"):
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                return f"pid {proc.name} ({cmd.strip()[:200]})"
        except OSError:
            continue
    return None


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def spawn(
    argv: Sequence[str],
    *,
    stdout_log: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``argv`` in its own session so it outlives us; return its pid.

    stdout and stderr are appended to ``stdout_log``; stdin is ``/dev/null``.
    """
    stdout_log.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    logger.debug("spawning %s", " ".join(argv))
    with stdout_log.open("ab") as out:
        out.write(f"\n--- started {now_iso()}: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def stop(pid: int, marker: str | None = None, timeout: float = 30.0) -> bool:
    """Send SIGTERM (then SIGKILL after ``timeout`` s) to the session of ``pid``.

    Returns whether the process was running.
    """
    if not pid_alive(pid, marker):
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.2)
    logger.warning("pid %s ignored SIGTERM for %.0f s; killing it", pid, timeout)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # spawn() made the pid a session (and group) leader
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a text file, or ``""`` when it does not exist."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def now_iso() -> str:
    """The current time, ISO-8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")
