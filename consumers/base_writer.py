"""Write a base version from a forked child, so that learning goes on while it is stored.

A base is the whole learner, pickled: at 1M users about 161 MB and 13-16 s, during which an
in-line publish learns nothing and publishes nothing. :class:`ForkedWriter` runs such a
write in a child made by ``os.fork()`` at a consistent point: the child's memory is the
parent's at that instant (copy on write), so it pickles exactly the state the parent had,
while the parent keeps learning. The child reports through a pipe (``ok <number>`` or
``failed <why>``) and leaves with ``os._exit`` (no ``atexit`` handler, no flush of the
parent's buffers); it dies with its parent (``PR_SET_PDEATHSIG``), and a child that runs
past ``timeout_seconds`` is killed and counted as failed. One child at a time. Linux only:
:func:`fork_available` says whether the fork path can be used for a store (the store must be
shared across processes: Redis, not ``memory://``); otherwise bases are written in line.

>>> writer = ForkedWriter()
>>> writer.start(lambda: 7)
True
>>> import time
>>> while (done := writer.poll()) is None:
...     time.sleep(0.01)
>>> done, writer.written, writer.failures
(('ok', 7), 1, 0)
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ForkedWriter", "fork_available"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def fork_available(registry: Any) -> bool:
    """Whether a base for ``registry`` can be written from a forked child (Linux, shared store).

    >>> from model_store import Registry
    >>> fork_available(Registry.from_url("memory://", signer=None))
    False
    """
    backend = getattr(registry, "backend", None)
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and bool(getattr(backend, "shared_across_processes", False)))


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this child when its parent dies (best effort)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ForkedWriter:
    """Run one ``write()`` (returning a version number) at a time in a forked child.

    :meth:`start` forks (False if a child is still running); :meth:`poll` returns ``None``
    while it runs, then ``("ok", number)`` or ``("failed", reason)`` once; :meth:`cancel`
    kills and reaps it. ``written`` and ``failures`` count the outcomes.
    """

    def __init__(self, *, timeout_seconds: float = 600.0, niceness: int = 10,
                 clock: Callable[[], float] = time.monotonic):
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self.timeout_seconds = timeout_seconds
        # the child's CPU priority below the learner's (os.nice): a base is not urgent, the
        # learner's deltas are (on a busy box a child at the same priority took its CPU)
        self.niceness = niceness
        self._clock = clock
        self._pid: int | None = None
        self._fd = -1
        self._started = 0.0
        self.written = 0
        self.failures = 0

    @property
    def running(self) -> bool:
        """Whether a child is running (or finished and not polled yet)."""
        return self._pid is not None

    def start(self, write: Callable[[], int]) -> bool:
        """Fork a child that runs ``write()`` and reports its result; False if one runs."""
        if self._pid is not None:
            return False
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                os.close(read_fd)
                gc.disable()  # a collection would touch (and copy) every page for nothing
                _die_with_parent()
                if self.niceness > 0:
                    os.nice(self.niceness)
                number = write()
                os.write(write_fd, f"ok {int(number)}".encode())
                code = 0
            except BaseException as exc:  # reported to the parent
                with contextlib.suppress(Exception):
                    os.write(write_fd, f"failed {type(exc).__name__}: {exc}"[:3000].encode())
            finally:
                os._exit(code)
        os.close(write_fd)
        self._pid, self._fd, self._started = pid, read_fd, self._clock()
        return True

    def poll(self) -> tuple[str, Any] | None:
        """``None`` while the child runs; then its outcome, once."""
        if self._pid is None:
            return None
        pid, status = os.waitpid(self._pid, os.WNOHANG)
        if pid == 0:
            if self._clock() - self._started <= self.timeout_seconds:
                return None
            self.cancel()
            self.failures += 1
            return ("failed", f"no result after {self.timeout_seconds:.0f} s, killed")
        message = self._read()
        self._pid = None
        code = os.waitstatus_to_exitcode(status)
        if code == 0 and message.startswith("ok "):
            self.written += 1
            return ("ok", int(message[3:]))
        self.failures += 1
        return ("failed", message.removeprefix("failed ") or f"exit status {code}")

    def cancel(self) -> None:
        """Kill the running child, if any, and reap it (its outcome is dropped)."""
        if self._pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._pid, 0)
        self._read()
        self._pid = None

    def close(self, wait_seconds: float = 0.0) -> tuple[str, Any] | None:
        """Wait up to ``wait_seconds`` for a running child, then cancel it; its outcome."""
        end = self._clock() + wait_seconds
        while self._pid is not None and self._clock() < end:
            done = self.poll()
            if done is not None:
                return done
            time.sleep(0.05)
        self.cancel()
        return None

    def _read(self) -> str:
        if self._fd < 0:
            return ""
        chunks = []
        with contextlib.suppress(OSError):
            os.set_blocking(self._fd, False)
            while chunk := os.read(self._fd, 4096):
                chunks.append(chunk)
        os.close(self._fd)
        self._fd = -1
        return b"".join(chunks).decode(errors="replace").strip()
