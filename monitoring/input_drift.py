"""Drift of what comes in, and of what the model says: per-model input and score drift.

Five signals per model, each watched by reference-window detectors
(:mod:`monitoring.detectors`): ``event_type`` (categories: chi-squared and PSI), ``value``,
``score`` (the model's prediction before learning), ``user_activity`` and
``item_popularity`` (PSI and chi-squared over activity classes). Once a window, each
active user (item) falls in the class
``floor(log2(events in the window))``, and the mix of classes is compared with the previous
window's, so a burst of very active users (a bot), or traffic piling on a few items, shows.
Those samples are of users and items, not of events: an event-level feature would repeat
one user's figure for each of its events, and its tests would alarm on noise.

:meth:`InputDrift.observe` costs five list appends per event (:meth:`~InputDrift.observe_many`
five list extends per batch); the counting and the tests
run once a window (``window`` events), in C (``Counter``) and numpy. :class:`InputDrift` is plain
picklable state: it travels inside the learner it watches (the attribute named
:data:`ATTRIBUTE`), so a warm-started learner resumes its reference windows.
:class:`InputDriftWatch` is the shell around it: Prometheus metrics and the alarm callback.

>>> import random
>>> from stream.schema import Event
>>> rng = random.Random(0)
>>> drift = InputDrift(window=500, score_warmup=0)
>>> for i in range(3000):
...     shift = 1.0 if i >= 1500 else 0.0
...     ev = Event(f"e{i}", f"u{rng.randrange(400)}", f"i{rng.randrange(300)}", "rating",
...                rng.gauss(3 + shift, 0.5), float(i))
...     drift.observe(ev, rng.gauss(3 + shift / 2, 0.3))
>>> sorted({(a.signal, a.at) for a in drift.drain()})
[('score', 2000), ('value', 2000)]
"""

from __future__ import annotations

import logging
import math
import pickle
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.detectors.base import Detector
from monitoring.detectors.registry import make
from stream.schema import Event

__all__ = ["ATTRIBUTE", "DEFAULT_DETECTORS", "SIGNALS", "InputAlarm", "InputDrift",
           "InputDriftWatch"]

log = logging.getLogger(__name__)

SIGNALS = ("event_type", "value", "score", "user_activity", "item_popularity")
DEFAULT_DETECTORS: Mapping[str, tuple[str, ...]] = {
    "event_type": ("chi2", "psi"), "value": ("psi", "ks"), "score": ("psi", "ks"),
    "user_activity": ("psi", "chi2"), "item_popularity": ("psi", "chi2")}
ATTRIBUTE = "input_drift"  # the learner attribute that carries the state into each version
_KEYED = ("user_activity", "item_popularity")
_TOP_CLASS = 12  # 4096 events or more in a window


@dataclass(frozen=True)
class InputAlarm:
    """One de-duplicated alarm: which test on which signal, after how many events."""

    signal: str
    detector: str
    at: int
    statistic: float
    threshold: float


class InputDrift:
    """Input and score drift of one model's events (see the module docstring).

    ``window`` events per comparison; ``psi_threshold`` and ``alpha`` configure the PSI and
    the KS / chi-squared tests; ``detectors``
    maps each signal to the detector names that watch it. A window with fewer than
    ``min_keys`` active users (items) is not compared on that signal: too few to tell.
    No ``score`` alarm is raised in the first ``score_warmup`` events (default five
    windows): a cold model's predictions spread out as it learns, which is not drift.
    """

    def __init__(self, window: int = 1000, *, psi_threshold: float = 0.2, alpha: float = 1e-4,
                 min_keys: int = 100, score_warmup: int | None = None,
                 detectors: Mapping[str, Sequence[str]] | None = None):
        self.window = window
        self.min_keys = min_keys
        self.score_warmup = 5 * window if score_warmup is None else score_warmup
        self.psi_threshold = psi_threshold
        self.alpha = alpha
        self.detectors = {s: tuple(d) for s, d in (detectors or DEFAULT_DETECTORS).items()}
        unknown = sorted(set(self.detectors) - set(SIGNALS))
        if unknown:
            raise ValueError(f"input drift signals {unknown}: expected some of {SIGNALS}")
        self._tests: dict[tuple[str, str], Detector] = {
            (signal, name): self._make(signal, name)
            for signal, names in self.detectors.items() for name in names}
        self._types: list[str] = []
        self._values: list[float] = []
        self._scores: list[float] = []
        self._users: list[str] = []
        self._items: list[str] = []
        self._n = 0
        self._pending: list[InputAlarm] = []
        self.alarm_counts: Counter[tuple[str, str]] = Counter()

    def _make(self, signal: str, name: str) -> Detector:
        params: dict[str, Any] = {"window": self.window}
        if signal == "score":
            params["min_events"] = self.score_warmup
        if name == "psi":
            params.update(threshold=self.psi_threshold,
                          categorical=signal == "event_type" or signal in _KEYED)
        elif name in ("ks", "chi2"):
            params["alpha"] = self.alpha
        return make(name, **params)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every (detector, signal) watched, for labels initialised at zero."""
        return [(d, s) for s, d in self._tests]

    @property
    def n(self) -> int:
        """Events observed."""
        return self._n

    def observe(self, event: Event, score: float) -> None:
        """Add one valid event and the model's prediction for it (made before learning)."""
        self._types.append(event.type)
        self._values.append(event.value)
        self._scores.append(score)
        self._users.append(event.user_id)
        self._items.append(event.item_id)
        self._n += 1
        if len(self._types) == self.window:
            self._evaluate()

    def observe_many(self, events: Sequence[Event], scores: Sequence[float]) -> None:
        """:meth:`observe` for each event and its score, by list slices (one batch).

        The windows close at the same events as one :meth:`observe` at a time would, so
        the figures and alarms are the same:

        >>> from stream.schema import Event
        >>> evs = [Event(str(i), f"u{i % 7}", f"i{i % 5}", "rating", i % 5, 0.0)
        ...        for i in range(250)]
        >>> one, many = InputDrift(window=100), InputDrift(window=100)
        >>> for e in evs:
        ...     one.observe(e, 3.0)
        >>> many.observe_many(evs[:30], [3.0] * 30); many.observe_many(evs[30:], [3.0] * 220)
        >>> many.n, str(many.statistics()) == str(one.statistics()), many._values == one._values
        (250, True, True)
        """
        start, n = 0, len(events)
        while start < n:
            take = min(n - start, self.window - len(self._types))
            part = events[start:start + take]
            self._types.extend([e.type for e in part])
            self._values.extend([e.value for e in part])
            self._scores.extend(scores[start:start + take])
            self._users.extend([e.user_id for e in part])
            self._items.extend([e.item_id for e in part])
            self._n += take
            start += take
            if len(self._types) == self.window:
                self._evaluate()

    def _evaluate(self) -> None:
        classes = {}
        for signal, keys in (("user_activity", self._users), ("item_popularity", self._items)):
            active = np.fromiter(Counter(keys).values(), dtype=float)
            classes[signal] = np.minimum(np.log2(active).astype(int), _TOP_CLASS).tolist()
        numbers: dict[str, Any] = {"value": self._values, "score": self._scores}
        arrays: dict[str, np.ndarray] = {}  # each numeric signal's window, made once
        for (signal, _), det in self._tests.items():
            if signal in _KEYED and len(classes[signal]) < self.min_keys:
                continue
            if signal in _KEYED:
                fired = det.update_window(classes[signal], size=self.window)  # type: ignore[attr-defined]
            elif signal == "event_type":
                fired = det.update_many(self._types)
            else:  # the detectors copy it into their own buffers: one array serves all
                data = arrays.get(signal)
                if data is None:
                    data = arrays[signal] = np.nan_to_num(np.asarray(numbers[signal]),
                                                          posinf=0.0, neginf=0.0)
                fired = det.update_many(data)
            if fired:
                state = det.state()
                self._pending.append(InputAlarm(signal, det.name, self._n,
                                                state["statistic"], state["threshold"]))
                self.alarm_counts[(det.name, signal)] += 1
        self._types, self._values, self._scores, self._users, self._items = [], [], [], [], []

    def drain(self) -> list[InputAlarm]:
        """Alarms raised since the last call, oldest first."""
        out, self._pending = self._pending, []
        return out

    def psi(self) -> dict[str, float]:
        """The last PSI of each signal watched by PSI (signals not yet compared: absent)."""
        out = {}
        for (signal, name), det in self._tests.items():
            value = det.state()["statistic"]
            if name == "psi" and not math.isnan(value):
                out[signal] = value
        return out

    def statistics(self) -> dict[tuple[str, str], float]:
        """The last statistic of every (detector, signal) test (NaN before the first)."""
        return {(name, signal): det.state()["statistic"]
                for (signal, name), det in self._tests.items()}

    def snapshot(self) -> bytes:
        """The whole state (reference windows, partial window, alarm counts)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, blob: bytes) -> InputDrift:
        """Resume from :meth:`snapshot`; continuing equals an uninterrupted run (pickle)."""
        obj = pickle.loads(blob)
        if not isinstance(obj, cls):
            raise TypeError(f"not an input drift snapshot: {type(obj).__name__}")
        return obj

    def forget_user(self, user: str) -> int:
        """Erasure (docs/privacy.md): rename ``user`` in the partial window; return entries.

        The id becomes an anonymous token of its own, so the window's activity classes,
        hence every later figure, stay exactly as they were.
        """
        token = f"\0erased:{sum(1 for u in set(self._users) if u.startswith(chr(0)))}"
        hits = [k for k, u in enumerate(self._users) if u == user]
        for k in hits:
            self._users[k] = token
        return len(hits)


class InputDriftWatch:
    """The shell around :class:`InputDrift` in a learner worker: metrics and alarms.

    ``metrics`` (a :class:`~monitoring.drift_metrics.DriftMetrics`) gets the PSI gauges and
    alarm counters; ``on_alarm(at, **detail)`` is called per alarm (the worker wiring
    raises a drift alarm on the store's log); its failures are logged, never raised.

    >>> learner = type("L", (), {})()
    >>> watch = InputDriftWatch.for_learner(learner, "reco", window=100)
    >>> getattr(learner, ATTRIBUTE) is watch.drift
    True
    """

    def __init__(self, drift: InputDrift, *, model: str, metrics: Any = None,
                 on_alarm: Callable[..., None] | None = None):
        self.drift = drift
        self.model = model
        self.metrics = metrics
        self.on_alarm = on_alarm
        self.observe = drift.observe
        self.observe_many = drift.observe_many
        if metrics is not None:
            metrics.init(drift.pairs)

    @classmethod
    def for_learner(cls, learner: Any, model: str, *, metrics: Any = None,
                    on_alarm: Callable[..., None] | None = None,
                    **config: Any) -> InputDriftWatch:
        """Watch ``learner``: resume the state it carries, or start one and attach it."""
        drift = getattr(learner, ATTRIBUTE, None)
        if not isinstance(drift, InputDrift):
            drift = InputDrift(**config)
            setattr(learner, ATTRIBUTE, drift)
        return cls(drift, model=model, metrics=metrics, on_alarm=on_alarm)

    def end_batch(self) -> list[InputAlarm]:
        """Export the figures and announce the alarms raised during the batch."""
        alarms = self.drift.drain()
        if self.metrics is not None:
            for signal, value in self.drift.psi().items():
                self.metrics.psi(signal).set(value)
        for alarm in alarms:
            log.warning("input drift on %s: %s %s = %.4g > %.4g after %d events", self.model,
                        alarm.signal, alarm.detector, alarm.statistic, alarm.threshold,
                        alarm.at)
            if self.metrics is not None:
                self.metrics.alarms(alarm.detector, alarm.signal).inc()
            if self.on_alarm is not None:
                try:
                    self.on_alarm(alarm.at, source="input", detector=alarm.detector,
                                  signal=alarm.signal, statistic=alarm.statistic)
                except Exception:
                    log.exception("announcing the input drift alarm of %s failed", self.model)
        return alarms
