"""Retention during a run: after each publish, prune versions beyond the last ``keep_last``.

Without it a learner publishing every 1,000 events grows the store by one model a publish.
The pruning is the store's own :meth:`~model_store.registry.Registry.gc`: it never deletes
a version an alias points at, nor the one each alias would roll back to, nor one created
within ``grace_seconds`` (a subscriber may still be loading it). A prune reads the version
list and tries every old version that is not protected, so it runs at most once every
``every_seconds`` (a learner may publish many times a second): the store then holds at most
``keep_last`` versions, plus those aliases protect, plus those published in the last
``grace_seconds + every_seconds``.

>>> from model_store import Registry
>>> from model_store.signing import Signer
>>> reg = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-doc-key"))
>>> class Inner:
...     def publish(self, learner, positions):
...         return reg.publish_object("reco", {"n": len(reg.versions("reco"))}).number
>>> pub = RetainLast(Inner(), reg, "reco", keep_last=3, grace_seconds=0, every_seconds=0)
>>> [pub.publish(None, {}) for _ in range(6)]
[1, 2, 3, 4, 5, 6]
>>> [v.number for v in reg.versions("reco")], pub.deleted
([4, 5, 6], 3)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["RetainLast"]

log = logging.getLogger(__name__)


class _Publisher(Protocol):
    def publish(self, learner: Any, positions: dict[tuple[str, int], int]) -> int: ...


class _Store(Protocol):
    def gc(self, model: str, keep_last: int = 10, *, grace_seconds: float = 60.0,
           dry_run: bool = False, max_age_seconds: float | None = None) -> list[int]: ...


class RetainLast:
    """Wrap a publisher: publish through it, then keep only the last ``keep_last`` versions.

    ``max_age_seconds`` (None: no limit) also drops versions created longer ago than that,
    the newest excepted (retention by age: :meth:`~model_store.registry.Registry.gc`).

    A failed prune is logged and retried after the next publish; it never fails the
    publish (the version is stored, so its offsets must still be committed).
    """

    def __init__(self, publisher: _Publisher, registry: _Store, model: str, *,
                 keep_last: int = 20, grace_seconds: float = 60.0, every_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 max_age_seconds: float | None = None):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.publisher = publisher
        self.registry = registry
        self.model = model
        self.keep_last = keep_last
        self.grace_seconds = grace_seconds
        self.max_age_seconds = max_age_seconds or None
        self.every_seconds = every_seconds
        self._clock = clock
        self._next_prune = -float("inf")
        self.deleted = 0

    def publish(self, learner: Any, positions: dict[tuple[str, int], int]) -> int:
        """Publish ``learner`` through the wrapped publisher, prune if due; return the version."""
        version = self.publisher.publish(learner, positions)
        now = self._clock()
        if now < self._next_prune:
            return version
        self._next_prune = now + self.every_seconds
        try:
            self.deleted += len(self.registry.gc(self.model, self.keep_last,
                                                 grace_seconds=self.grace_seconds,
                                                 max_age_seconds=self.max_age_seconds))
        except Exception as exc:  # the store hiccuped: the next publish prunes again
            log.warning("retention of %s after version %d failed (%s: %s)", self.model,
                        version, type(exc).__name__, exc)
        return version
