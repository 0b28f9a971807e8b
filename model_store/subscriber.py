"""A subscriber keeps the version an alias points at loaded, and swaps it atomically.

A background thread is woken by the pub/sub channel (fast path), reads the stream log from
the last entry it saw (so nothing is lost across a disconnect) and polls the alias every
``poll_interval`` seconds as a safety net. A new version is fetched, verified and
deserialised off to the side, then swapped in by one reference assignment of an
immutable :class:`Loaded`, so a concurrent :meth:`Subscriber.predict` sees the old model
or the new one, never half of either. A ``river-delta`` version that continues the served
one is applied to a standby copy, which is then swapped in the same way
(:mod:`model_store.replicas`); any other is loaded whole, base + deltas, off to the side.
Any load failure (tampered or unsigned blob, Redis down, a loader error) is logged and counted in
``lifelong_subscriber_load_failures_total{model,reason}``, and the last good model keeps
serving. A ranking model (an :class:`~learning.scorer.ItemScorer`) also serves
:meth:`Subscriber.recommend`: top-k over its whole catalogue (see
:mod:`model_store.recommend`).

>>> from model_store.registry import Registry
>>> from model_store.signing import Signer
>>> class Const:
...     def __init__(self, c): self.c = c
...     def predict_one(self, user, item): return self.c
>>> reg = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-doc-key"))
>>> _ = reg.publish("reco", b"1.0", format="const")
>>> with Subscriber(reg, "reco", loader=lambda v, data: Const(float(data))) as sub:
...     first = sub.predict("u1", "i1")
...     _ = reg.publish("reco", b"2.0", format="const")
...     sub.wait_for_version(2, timeout=5), sub.predict("u1", "i1"), first
(True, 2.0, 1.0)
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry

from model_store.backend import Listener
from model_store.canary import in_canary
from model_store.errors import FormatError, InvalidNameError, ModelStoreError
from model_store.keys import check_alias, check_name
from model_store.metrics import (
    CONNECTION_ERRORS,
    FAILURE_REASONS,
    SubscriberMetrics,
    failure_reason,
)
from model_store.predictor import Predictor, as_predictor
from model_store.recommend import TopK, is_item_scorer
from model_store.records import ModelVersion
from model_store.registry import Registry
from model_store.replicas import Replicas, takes_deltas
from monitoring.freshness import ServingFreshness

__all__ = ["Loaded", "Loader", "Subscriber"]

log = logging.getLogger(__name__)

Loader = Callable[[ModelVersion, bytes], Any]
class Loaded(NamedTuple):
    """One loaded version: metadata, the deserialised object, its predictor (or None)."""

    version: ModelVersion
    model: Any
    predictor: Predictor | None


class Subscriber:
    """Follow ``alias`` of ``model`` in ``registry`` and serve the loaded version.

    ``loader(version, verified_bytes)`` builds the object (default: unpickle a signed
    ``river-pickle``, bytes otherwise). With ``canary_share > 0`` a stable share of users
    (by a hash of the user id) is served by ``canary_alias`` when it exists. With
    ``coalesce`` (default) a burst of moves loads only the last; without it, every version
    the log announces is loaded in order. ``on_swap(alias, version)`` runs after each swap.
    ``topk`` configures :meth:`recommend` (exploration, MMR diversity; default: plain top-k).
    """

    def __init__(
        self,
        registry: Registry,
        model: str,
        *,
        alias: str = "latest",
        loader: Loader | None = None,
        poll_interval: float = 1.0,
        metrics_registry: CollectorRegistry | None = None,
        canary_share: float = 0.0,
        canary_alias: str = "candidate",
        coalesce: bool = True,
        retry_interval: float = 30.0,
        on_swap: Callable[[str, ModelVersion], None] | None = None,
        topk: TopK | None = None,
        pseudonymizer: Callable[[str], str] | None = None,
    ) -> None:
        if not 0.0 <= canary_share <= 1.0 or poll_interval <= 0:
            raise InvalidNameError("canary_share must be in [0, 1], poll_interval positive")
        self.registry = registry
        self.model = check_name("model", model)
        self.alias = check_alias(alias)
        self.loader = loader
        self.poll_interval = poll_interval
        self.canary_share = canary_share
        self.canary_alias = check_alias(canary_alias)
        self.coalesce = coalesce
        self.retry_interval = retry_interval
        self.on_swap = on_swap
        self.topk = topk if topk is not None else TopK()
        self.pseudonymizer = pseudonymizer  # callers pass raw ids; models hold pseudonyms
        metrics_registry = metrics_registry or CollectorRegistry()
        self.metrics = SubscriberMetrics(metrics_registry)
        self.freshness = ServingFreshness(metrics_registry)  # published -> loaded -> served
        for reason in FAILURE_REASONS:  # at 0, so the first failure is an increase
            self.metrics.failures.labels(self.model, reason)
        self._follow = (alias, canary_alias) if canary_share > 0 else (alias,)
        self._slots: dict[str, Loaded] = {}
        self._failed: dict[str, tuple[int, float]] = {}
        self._last_id = "0-0"
        self._synced = False
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._replicas = Replicas(registry, self.model)  # double buffering of deltas

    # lifecycle --------------------------------------------------------------------
    def start(self) -> Subscriber:
        """Load the current version (failures are counted, not raised) and start following."""
        if self._thread is not None:
            return self
        self._stop.clear()
        try:
            self._sync()
        except Exception as exc:
            self._count(None, exc)
        self._thread = threading.Thread(target=self._run, name=f"subscriber-{self.model}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following; the loaded model stays usable."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Subscriber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # serving ----------------------------------------------------------------------
    @property
    def current(self) -> tuple[ModelVersion, Any] | None:
        """The (version, object) served for ``alias``, or ``None`` before the first load."""
        loaded = self._slots.get(self.alias)
        return None if loaded is None else (loaded.version, loaded.model)

    def loaded(self, alias: str | None = None) -> Loaded | None:
        """The :class:`Loaded` slot of ``alias`` (default: the followed alias)."""
        return self._slots.get(alias or self.alias)

    def predict(self, user: str, item: str) -> float:
        """Score ``item`` for ``user`` with the served (or canary) model."""
        user = self._user(user)
        return float(self._predictor(user).predict(user, item))

    def rank(self, user: str, items: list[str], k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` best ``items`` for ``user`` as (item, score), best first; one model."""
        user = self._user(user)
        predictor = self._predictor(user)
        scored = [(item, float(predictor.predict(user, item))) for item in items]
        return sorted(scored, key=lambda pair: pair[1], reverse=True)[:k]

    def recommend(self, user: str, k: int = 10, *, exclude_seen: bool = True,
                  candidates: list[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` best items of the served ranking model's catalogue for ``user``.

        ``(item, score)`` best first, the user's seen items left out unless
        ``exclude_seen=False``, restricted to ``candidates`` when given (unknown ids are
        skipped). A cold user gets the model's non-personal (popularity) list. Canary
        routing applies as for :meth:`predict`.
        """
        user = self._user(user)
        loaded = self._slot(user)
        if not is_item_scorer(loaded.model):
            raise FormatError(
                f'model "{self.model}" version {loaded.version.number} cannot recommend: '
                f"{type(loaded.model).__name__} is not an ItemScorer (item_ids, score_items, "
                "seen_items, item_vectors)")
        return self.topk.recommend(loaded.model, user, k, exclude_seen=exclude_seen,
                                   candidates=candidates)

    def wait_for_version(self, number: int, timeout: float = 10.0, *,
                         alias: str | None = None, exact: bool = False) -> bool:
        """Block until ``alias`` serves version ``number`` (or newer unless ``exact``)."""
        def ready() -> bool:
            slot = self._slots.get(alias or self.alias)
            got = slot.version.number if slot else 0
            return got == number if exact else got >= number

        with self._changed:
            return self._changed.wait_for(ready, timeout)

    # following --------------------------------------------------------------------
    def _run(self) -> None:
        listener: Listener | None = None
        backoff, next_poll = 0.1, time.monotonic() + self.poll_interval
        while not self._stop.is_set():
            try:
                if listener is None:
                    listener = self.registry.backend.listen(self.model)
                    if self._synced:
                        self._drain()  # whatever happened while not subscribed
                    else:
                        self._sync()
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.poll_interval
                    self._poll()
                listener.wait(min(self.poll_interval, 0.5))
                self._drain()
                backoff = 0.1
            except Exception as exc:
                self._count(None, exc)
                listener = self._close(listener)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._close(listener)

    def _sync(self) -> None:
        """Jump to what each followed alias points at now, and read the log after that."""
        backend = self.registry.backend
        target, self._last_id = backend.head(self.model, self.alias)
        self._synced = True
        targets = {self.alias: target}
        for alias in self._follow[1:]:
            targets[alias] = backend.get_alias(self.model, alias)
        for alias, number in targets.items():
            if number is not None:
                self._switch(alias, number)

    def _drain(self) -> None:
        while True:
            events = self.registry.backend.read_events(self.model, self._last_id, 100)
            last = {ev.alias: entry_id for entry_id, ev in events}  # coalesce: last per alias
            for entry_id, ev in events:
                if ev.alias in self._follow and (not self.coalesce or last[ev.alias] == entry_id):
                    self._switch(ev.alias, ev.version)
                self._last_id = entry_id
            if len(events) < 100:
                return

    def _poll(self) -> None:
        for alias in self._follow:
            target = self.registry.backend.get_alias(self.model, alias)
            failed = self._failed.get(alias)
            if target is None or (failed and failed[0] == target
                                  and time.monotonic() - failed[1] < self.retry_interval):
                continue
            slot = self._slots.get(alias)
            if slot is None or slot.version.number != target:
                self._switch(alias, target)

    def _switch(self, alias: str, number: int) -> None:
        slot = self._slots.get(alias)
        if slot is not None and slot.version.number == number:
            return
        started = time.perf_counter()
        try:
            if self.loader is None:  # a delta continuing the served version: the standby
                version = self.registry.get(self.model, number)
                obj = self._replicas.load(alias, slot and (slot.version, slot.model), version)
            else:
                version = self.registry.get(self.model, number)
                obj = self.loader(version, self.registry.read_blob(self.model, number))
        except CONNECTION_ERRORS:
            raise  # the loop counts it, reconnects and retries from the same log position
        except Exception as exc:
            self._replicas.forget(alias)
            self._failed[alias] = (number, time.monotonic())
            self._count(number, exc)
            return
        loaded = Loaded(version, obj, as_predictor(obj))
        self._slots = {**self._slots, alias: loaded}  # the atomic swap
        self._failed.pop(alias, None)
        m = self.metrics
        m.load_seconds.labels(self.model).observe(time.perf_counter() - started)
        m.version.labels(self.model, alias).set(number)
        m.created.labels(self.model, alias).set(version.created)
        m.swaps.labels(self.model, alias).inc()
        self.freshness.loaded(self.model, alias, version)
        log.info("subscriber %s/%s now serves version %d (was %s)", self.model, alias, number,
                 slot.version.number if slot else None)
        with self._changed:
            self._changed.notify_all()
        if self.loader is None and takes_deltas(version):
            try:  # off the request path: the copy the next delta is applied to
                self._replicas.prepare(alias, version)
            except CONNECTION_ERRORS:
                raise
            except Exception as exc:  # the next delta then loads whole
                log.warning("subscriber %s/%s: no standby copy of version %d (%s)",
                            self.model, alias, number, exc)
        if self.on_swap is not None:
            try:
                self.on_swap(alias, version)
            except Exception:
                log.exception("subscriber %s/%s: on_swap callback failed", self.model, alias)

    def _slot(self, user: str) -> Loaded:
        slots = self._slots
        loaded = slots.get(self.alias)
        if self.canary_share > 0 and in_canary(user, self.canary_share):
            loaded = slots.get(self.canary_alias, loaded)
        if loaded is None:
            raise ModelStoreError(
                f'model "{self.model}" alias "{self.alias}": no version loaded yet')
        return loaded

    def _predictor(self, user: str) -> Predictor:
        loaded = self._slot(user)
        if loaded.predictor is None:
            raise FormatError(f'model "{self.model}" version {loaded.version.number} cannot '
                              "predict: it has neither predict_one(user, item) nor predict")
        return loaded.predictor

    def _count(self, number: int | None, exc: BaseException) -> None:
        reason = failure_reason(exc)
        self.metrics.failures.labels(self.model, reason).inc()
        what = f"version {number}" if number is not None else "updates"
        slot = self._slots.get(self.alias)
        log.warning("subscriber %s/%s: loading %s failed (%s), keeping version %s: %s",
                    self.model, self.alias, what, reason,
                    slot.version.number if slot else None, exc)

    @staticmethod
    def _close(listener: Listener | None) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection may fail too
            if listener is not None:
                listener.close()

    def _user(self, user: str) -> str:
        """The id the models know ``user`` by: its pseudonym when one is configured."""
        return user if self.pseudonymizer is None else self.pseudonymizer(user)
