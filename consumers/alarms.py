"""Alarms read from the model store's event stream, for the fine-tune worker to act on.

The online learner raises a drift alarm with :meth:`model_store.Registry.alarm`; it lands
on the model's stream log and pub/sub channel. :class:`StoreAlarms` follows the logs of
one or more models in background threads (from the log position when :meth:`start` ran, so
nothing raised after that is missed, even across a dropped connection) and hands the
alarms of the wanted kinds to whoever calls :meth:`StoreAlarms.drain` (non-blocking).
:func:`drift_alarm` is the online learner's side: the ``on_drift`` callback that raises one.

>>> from model_store import Registry
>>> reg = Registry.from_url("memory://", signer=None)
>>> with StoreAlarms(reg, ["reco"]) as alarms:
...     _ = reg.alarm("reco", detail={"events": 1200})
...     _ = reg.alarm("reco", "quality")          # another kind: not wanted
...     found = alarms.wait(1, timeout=5)
>>> [(a.kind, a.detail) for a in found]
[('alarm', {'events': 1200, 'alarm': 'drift'})]
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from model_store.records import StoreEvent
from model_store.registry import Registry

__all__ = ["StoreAlarms", "drift_alarm"]

log = logging.getLogger(__name__)


class StoreAlarms:
    """Collect ``kinds`` of alarms (default ``drift``) raised on ``models`` in ``registry``."""

    def __init__(self, registry: Registry, models: Iterable[str],
                 kinds: Sequence[str] = ("drift",), *, wait: float = 0.5):
        self.registry = registry
        self.models = tuple(dict.fromkeys(models))
        self.kinds = tuple(kinds)
        self.wait_interval = wait
        self._pending: list[StoreEvent] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> StoreAlarms:
        """Take each log's current end and start following from there."""
        if self._threads:
            return self
        self._stop.clear()
        for model in self.models:
            position = self.registry.backend.head(model, "latest")[1]
            thread = threading.Thread(target=self._follow, args=(model, position),
                                      name=f"alarms-{model}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _follow(self, model: str, position: str) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                for entry_id, event in self.registry.follow(model, after=position,
                                                            stop=self._stop):
                    position = entry_id
                    if event.kind == "alarm" and event.detail.get("alarm") in self.kinds:
                        log.info("alarm on %s: %s", model, event.detail)
                        with self._cond:
                            self._pending.append(event)
                            self._cond.notify_all()
                backoff = 0.1
            except Exception as exc:  # Redis down: keep the position, retry with backoff
                log.warning("following alarms of %s failed (%s); retrying", model, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def __len__(self) -> int:
        """Alarms waiting to be drained."""
        with self._cond:
            return len(self._pending)

    def drain(self) -> list[StoreEvent]:
        """The alarms that arrived since the last call, oldest first (never blocks)."""
        with self._cond:
            out, self._pending = self._pending, []
        return out

    __call__ = drain

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[StoreEvent]:
        """Block until ``count`` alarms are pending (or ``timeout``); drain and return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.wait_for(lambda: len(self._pending) >= count,
                                max(0.0, deadline - time.monotonic()))
        return self.drain()

    def close(self) -> None:
        """Stop following (waits for the threads, at most about ``wait`` seconds)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.wait_interval * 4 + 1)
        self._threads = []

    def __enter__(self) -> StoreAlarms:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def drift_alarm(registry: Registry, model: str) -> Callable[..., None]:
    """An ``on_drift`` callback that raises a drift alarm on ``model`` in the store.

    A failure to announce it is logged, never raised: an alarm must not stop learning.
    ``detail`` (input drift: the detector and signal) is added to the alarm's detail.

    >>> reg = Registry.from_url("memory://", signer=None)
    >>> drift_alarm(reg, "reco")(1234)
    >>> [e.detail for _, e in reg.follow("reco", after="0-0", timeout=0.1)]
    [{'events': 1234, 'alarm': 'drift'}]
    """
    def raise_alarm(at: int, **detail: Any) -> None:
        try:
            registry.alarm(model, detail={"events": at, **detail}, actor="online")
        except Exception as exc:
            log.warning("could not raise the drift alarm for %s: %s", model, exc)

    return raise_alarm
