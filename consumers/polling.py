"""The part every poll loop shares: bounded polls and when to stop for lack of records.

>>> from stream.source import ListSource
>>> src = ListSource([b"a", b"b", b"c"], batch_size=2)
>>> loop = PollLoop(src, max_events=3)
>>> [len(loop.poll(consumed=0)), len(loop.poll(consumed=2)), loop.done(consumed=3)]
[2, 1, True]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from stream.source import Record, Source

__all__ = ["PollLoop"]

log = logging.getLogger(__name__)


class PollLoop:
    """Polls ``source`` (at most one second a call) and says when a loop should end.

    The loop ends when the source is exhausted, ``max_events`` records were consumed, or
    nothing arrived for ``idle_timeout`` seconds; time spent waiting for a consumer group
    to assign partitions (a source whose ``assigned`` is False) is not idle: after a crash
    the group waits for the dead member's session to time out.
    """

    def __init__(self, source: Source, *, max_events: int | None = None,
                 idle_timeout: float | None = None, poll_timeout: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.source = source
        self.max_events = max_events
        self.idle_timeout = idle_timeout
        self.poll_timeout = min(poll_timeout, 1.0)
        self._clock = clock
        self._idle_since = clock()
        self._stop = False

    def done(self, consumed: int) -> bool:
        """True once ``max_events`` were consumed, or :meth:`poll` saw the end."""
        return self._stop or (self.max_events is not None and consumed >= self.max_events)

    def poll(self, consumed: int, timeout: float | None = None) -> list[Record]:
        """The next records, never more than ``max_events - consumed``.

        ``timeout`` shortens this poll's wait (never beyond ``poll_timeout``).
        """
        wait = self.poll_timeout if timeout is None else min(timeout, self.poll_timeout)
        records = self.source.poll(wait)
        now = self._clock()
        if records:
            self._idle_since = now
            if self.max_events is not None:
                records = records[: self.max_events - consumed]
        elif self.source.exhausted:
            self._stop = True
        elif not getattr(self.source, "assigned", True):
            self._idle_since = now
        elif self.idle_timeout is not None and now - self._idle_since >= self.idle_timeout:
            log.info("no records for %.1f s; stopping", self.idle_timeout)
            self._stop = True
        return records
