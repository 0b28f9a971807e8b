"""Follow a model's notices as they happen: the log, read from a position, woken by pub/sub.

:func:`follow` subscribes first and only then takes its starting position, so nothing that
happens in between is lost; it reads the stream log (never the pub/sub payloads), so no
entry is missed or repeated even when a wake-up is. It is what ``lifelong models watch``
prints, and works over any :class:`~model_store.backend.EventLog`.

>>> from model_store.memory_backend import MemoryBackend
>>> from model_store.registry import Registry
>>> reg = Registry(MemoryBackend())
>>> _ = reg.publish("reco", b"a", format="raw"); _ = reg.promote("reco", 1, actor="ci")
>>> [(e.kind, e.alias, e.version) for _, e in follow(reg.backend, "reco", after="0-0",
...                                                    timeout=0.1)]
[('publish', 'latest', 1), ('alias', 'production', 1)]
>>> list(follow(reg.backend, "reco", timeout=0.1))  # from now on: nothing new
[]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from model_store.backend import EventLog
from model_store.errors import InvalidNameError
from model_store.keys import check_name
from model_store.records import StoreEvent

__all__ = ["follow"]

_BATCH = 100


def follow(
    log: EventLog,
    model: str,
    *,
    after: str | None = None,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    wait: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[tuple[str, StoreEvent]]:
    """Yield ``(log id, event)`` for each publish, alias move and alarm of ``model``, oldest first.

    Starts strictly after log id ``after`` (``"0-0"``: the whole retained log; default:
    the end of the log when the subscription is made, so only new events). Ends when
    ``timeout`` seconds have passed or ``stop`` is set (checked at least every ``wait``
    seconds); closing the generator (``break``, Ctrl-C) unsubscribes.
    """
    check_name("model", model)
    if wait <= 0 or (timeout is not None and timeout < 0):
        raise InvalidNameError("wait must be positive and timeout not negative")
    deadline = None if timeout is None else clock() + timeout
    listener = log.listen(model)
    try:
        position = log.head(model, "latest")[1] if after is None else after
        while stop is None or not stop.is_set():
            events = log.read_events(model, position, _BATCH)
            for entry_id, event in events:
                position = entry_id
                yield entry_id, event
            if len(events) == _BATCH:
                continue
            left = wait if deadline is None else min(wait, deadline - clock())
            if left <= 0:
                return
            listener.wait(left)
    finally:
        listener.close()
