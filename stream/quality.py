"""Data-quality gates: valid events that must still never be learned (poison, bots).

The schema (:mod:`stream.schema`) says whether a record *is* an event; the gates say
whether a valid event is *plausible*: its value inside the declared scale, its ``ts`` not
far in the future nor before a floor, and its user not bursting faster than a person can.
An event a gate refuses is quarantined (``events.quarantine``, reason in a header) and
counted by reason; it is never learned. Rules are configured per event type (``rating``,
``click``...; ``*`` for the others) and read once at start-up, the bad key named.

Each check is a few float comparisons (the user rate one a dict lookup), so the per-event
cost stays small.

>>> gates = QualityGates.from_spec({"rating": {"value": [1, 5], "max_future_seconds": 60}})
>>> from stream.schema import Event
>>> ok = Event("e1", "u1", "i1", "rating", 4.0, 1000.0)
>>> gates.check(ok, now=1000.0) is None
True
>>> gates.check(Event("e2", "u1", "i1", "rating", 1e308, 1000.0), now=1000.0)
'value_range: value 1e+308 outside [1.0, 5.0] for type rating'
>>> gates.check(Event("e3", "u1", "i1", "rating", 3.0, 1e15), now=1000.0).split(":")[0]
'ts_future'
>>> QualityGates.from_spec({"rating": {"value": [5, 1]}})
Traceback (most recent call last):
...
stream.quality.QualityConfigError: quality.rating.value=[5, 1]: expected [LOW, HIGH] with LOW < HIGH
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stream.schema import Event

__all__ = [
    "DEFAULT_SPEC",
    "QUARANTINE_REASONS",
    "QualityConfigError",
    "QualityGates",
    "Rule",
    "TimeWindow",
    "UserRate",
    "ValueRange",
]

QUARANTINE_REASONS = ("value_range", "ts_future", "ts_floor", "user_rate")

# Ratings in common data sets are 0.5-5 stars or 0-10 (MovieTweetings); behaviour events
# carry 1.0 or a small weight. A day of clock skew is tolerated; nothing before 1970.
DEFAULT_SPEC: dict[str, dict[str, Any]] = {
    "rating": {"value": [0.0, 10.0], "max_future_seconds": 86_400.0, "min_ts": 0.0,
               "max_per_user": 600, "per_seconds": 60.0},
    "*": {"value": [0.0, 1_000.0], "max_future_seconds": 86_400.0, "min_ts": 0.0,
          "max_per_user": 600, "per_seconds": 60.0},
}
_KEYS = ("value", "max_future_seconds", "min_ts", "max_per_user", "per_seconds")


class QualityConfigError(ValueError):
    """The quality configuration is malformed; the message names the key."""


class Rule(Protocol):
    """One gate: ``check`` returns ``None`` to let the event through, else the reason."""

    def check(self, event: Event, now: float) -> str | None:
        """The reason (``<kind>: <detail>``) to quarantine ``event``, or ``None``."""
        ...


@dataclass(frozen=True)
class ValueRange:
    """``low <= value <= high``.

    >>> ValueRange(1, 5).check(Event("e", "u", "i", "rating", -1e9, 0.0), 0.0)
    'value_range: value -1e+09 outside [1, 5] for type rating'
    """

    low: float
    high: float

    def check(self, event: Event, now: float) -> str | None:
        """Refuse a value outside the range."""
        if self.low <= event.value <= self.high:
            return None
        return (f"value_range: value {event.value:g} outside [{self.low}, {self.high}] "
                f"for type {event.type}")


@dataclass(frozen=True)
class TimeWindow:
    """``min_ts <= ts <= now + max_future_seconds`` (``now``: the wall clock, epoch s).

    >>> TimeWindow(60.0, 0.0).check(Event("e", "u", "i", "view", 1.0, -5.0), 100.0)
    'ts_floor: ts -5 before 0'
    """

    max_future_seconds: float
    min_ts: float

    def check(self, event: Event, now: float) -> str | None:
        """Refuse an event stamped far in the future or before the floor."""
        if event.ts > now + self.max_future_seconds:
            return (f"ts_future: ts {event.ts:.0f} more than {self.max_future_seconds:g} s "
                    f"after now ({now:.0f})")
        if event.ts < self.min_ts:
            return f"ts_floor: ts {event.ts:g} before {self.min_ts:g}"
        return None


class UserRate:
    """At most ``max_per_user`` events per user in each ``per_seconds`` window of event time.

    Fixed windows by event time (not arrival time, so a replayed file is judged like the
    live stream): one dict lookup and two comparisons per event. ``capacity`` bounds the
    users tracked; past it, users whose window ended are forgotten. State is learned, so it
    has :meth:`snapshot` and :meth:`restore`.

    >>> rate = UserRate(2, 60.0)
    >>> [rate.check(Event(str(k), "bot", "i", "click", 1.0, 10.0 + k), 0.0) for k in range(3)]
    [None, None, 'user_rate: more than 2 events in 60 s from one user']
    """

    def __init__(self, max_per_user: int, per_seconds: float, *, capacity: int = 1_000_000):
        self.max_per_user = max_per_user
        self.per_seconds = per_seconds
        self.capacity = capacity
        # user -> (window start, count): immutable pairs, so a snapshot (each publish) is a
        # shallow dict copy, not a list copy per user
        self._windows: dict[str, tuple[float, float]] = {}
        # the users whose window changed since take_touched, in the order first touched (a
        # dict: new users keep the windows' order), None: not tracked, or any user
        self._touched: dict[str, None] | None = None

    def check(self, event: Event, now: float) -> str | None:
        """Count the event in its user's window; refuse it past the limit."""
        user, ts = event.user_id, event.ts
        w = self._windows.get(user)
        touched = self._touched
        if touched is not None:
            touched[user] = None
        if w is None or ts >= w[0] + self.per_seconds or ts < w[0]:
            if w is None and len(self._windows) >= self.capacity:
                self._forget(ts)
            self._windows[user] = (ts, 1.0)
            return None
        count = w[1] + 1.0
        self._windows[user] = (w[0], count)
        if count > self.max_per_user:
            return (f"user_rate: more than {self.max_per_user} events in "
                    f"{self.per_seconds:g} s from one user")
        return None

    def take_touched(self) -> dict[str, None] | None:
        """The users whose window may have changed since the last call; None: any user.

        The first call starts the tracking (None: nothing is known before it); so do the
        calls after :meth:`restore` or a sweep of old windows, which change any user.

        >>> rate = UserRate(2, 60.0)
        >>> rate.take_touched() is None
        True
        >>> _ = rate.check(Event("1", "u", "i", "click", 1.0, 10.0), 0.0)
        >>> rate.take_touched(), rate.take_touched()
        ({'u': None}, {})
        """
        touched, self._touched = self._touched, {}
        return touched

    def _forget(self, ts: float) -> None:
        self._touched = None  # a sweep: any user may be gone
        horizon = ts - self.per_seconds
        self._windows = {u: w for u, w in self._windows.items() if w[0] >= horizon}
        if len(self._windows) >= self.capacity:  # all recent: drop the oldest half
            keep = sorted(self._windows.items(), key=lambda kv: kv[1][0])[self.capacity // 2:]
            self._windows = dict(keep)

    def snapshot(self) -> dict[str, tuple[float, float]]:
        """The per-user windows (a copy; each a ``(start, count)`` pair)."""
        return dict(self._windows)

    def restore(self, state: Mapping[str, Sequence[float]]) -> None:
        """Continue from :meth:`snapshot` output (pairs or, from older versions, lists)."""
        self._windows = {u: (float(w[0]), float(w[1])) for u, w in state.items()}
        self._touched = None


class QualityGates:
    """The rules per event type (``*``: any type not named); ``check`` runs them in order.

    ``QualityGates({})`` lets everything through; :meth:`from_spec` builds the rules from a
    JSON-like map (see :data:`DEFAULT_SPEC`), :meth:`from_env_value` from the
    ``LIFELONG_QUALITY`` setting (JSON text, or ``off``).
    """

    def __init__(self, rules: Mapping[str, list[Rule]]):
        self.rules = {t: list(r) for t, r in rules.items()}
        self._default = self.rules.get("*", [])
        # the default shape (value range, time window, user rate) fused into one function
        # a type: the same verdicts and reasons in the same order, fewer calls an event
        self._fused = {t: _fuse(r) for t, r in self.rules.items()}
        self._fused_default = self._fused.get("*") or _fuse(self._default)

    def check(self, event: Event, now: float) -> str | None:
        """The first refusing rule's reason, or ``None`` when every rule lets it through."""
        return self._fused.get(event.type, self._fused_default)(event, now)

    def snapshot(self) -> dict[str, Any]:
        """State of the stateful rules, by event type (for checkpoints)."""
        return {t: [r.snapshot() for r in rules if isinstance(r, UserRate)]
                for t, rules in self.rules.items()}

    def take_touched(self) -> dict[str, list[dict[str, None] | None]]:
        """Per type, in :meth:`snapshot`'s order: each rule's :meth:`UserRate.take_touched`.

        What changed in the state since the previous call, so a publisher diffs only those
        users' windows (:func:`model_store.delta.quality_diff`).
        """
        return {t: [r.take_touched() for r in rules if isinstance(r, UserRate)]
                for t, rules in self.rules.items()}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`snapshot` output (types or rules not configured are skipped)."""
        for t, states in state.items():
            rates = [r for r in self.rules.get(t, []) if isinstance(r, UserRate)]
            for rule, s in zip(rates, states, strict=False):
                rule.restore(s)

    @classmethod
    def default(cls) -> QualityGates:
        """The gates of :data:`DEFAULT_SPEC`."""
        return cls.from_spec(DEFAULT_SPEC)

    @classmethod
    def from_env_value(cls, raw: str | None, key: str = "LIFELONG_QUALITY") -> QualityGates:
        """Parse the setting: empty means the defaults, ``off`` no gates, else JSON.

        The JSON map is merged over :data:`DEFAULT_SPEC` per event type and key.

        >>> QualityGates.from_env_value('{"rating": {"value": [1, 5]}}').rules["rating"][0]
        ValueRange(low=1.0, high=5.0)
        >>> QualityGates.from_env_value("{")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        stream.quality.QualityConfigError: LIFELONG_QUALITY='{': not JSON (...)
        """
        if raw is None or not raw.strip():
            return cls.default()
        if raw.strip().lower() == "off":
            return cls({})
        try:
            given = json.loads(raw)
        except ValueError as exc:
            raise QualityConfigError(f"{key}={raw!r}: not JSON ({exc})") from exc
        if not isinstance(given, dict):
            raise QualityConfigError(f"{key}: expected a JSON object of event type -> rules")
        merged = {t: dict(v) for t, v in DEFAULT_SPEC.items()}
        for t, rules in given.items():
            if not isinstance(rules, dict):
                raise QualityConfigError(f"{key}.{t}: expected an object of rules")
            merged[t] = {**merged.get(t, merged["*"]), **rules}
        return cls.from_spec(merged, prefix=key)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Mapping[str, Any]],
                  prefix: str = "quality") -> QualityGates:
        """Build and validate the rules; a bad key raises :class:`QualityConfigError`."""
        rules: dict[str, list[Rule]] = {}
        for etype, conf in spec.items():
            where = f"{prefix}.{etype}"
            unknown = sorted(set(conf) - set(_KEYS))
            if unknown:
                raise QualityConfigError(f"{where}: unknown key(s) {unknown}; known: "
                                         f"{', '.join(_KEYS)}")
            out: list[Rule] = []
            if conf.get("value") is not None:
                rng = conf["value"]
                if (not isinstance(rng, list | tuple) or len(rng) != 2
                        or not all(_is_num(x) for x in rng) or not rng[0] < rng[1]):
                    raise QualityConfigError(f"{where}.value={rng!r}: expected [LOW, HIGH] "
                                             "with LOW < HIGH")
                out.append(ValueRange(float(rng[0]), float(rng[1])))
            future, floor = conf.get("max_future_seconds"), conf.get("min_ts")
            if future is not None or floor is not None:
                future = _number(f"{where}.max_future_seconds", future, math.inf, minimum=0.0)
                floor = _number(f"{where}.min_ts", floor, -math.inf)
                out.append(TimeWindow(future, floor))
            if conf.get("max_per_user") is not None:
                n = conf["max_per_user"]
                if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                    raise QualityConfigError(f"{where}.max_per_user={n!r}: expected an "
                                             "integer >= 1")
                per = _number(f"{where}.per_seconds", conf.get("per_seconds"), 60.0,
                              minimum=1e-9)
                out.append(UserRate(n, per))
            rules[etype] = out
        return cls(rules)


def _fuse(rules: list[Rule]) -> Callable[[Event, float], str | None]:
    """One check function for ``rules`` (the rules' own reasons, in their order).

    >>> gates = QualityGates.default()
    >>> ev = Event("e", "u", "i", "rating", 11.0, 5.0)
    >>> gates.check(ev, 0.0) == gates.rules["rating"][0].check(ev, 0.0)
    True
    """
    if (len(rules) == 3 and type(rules[0]) is ValueRange and type(rules[1]) is TimeWindow
            and type(rules[2]) is UserRate):
        value_range, window, rate = rules
        low, high = value_range.low, value_range.high
        future, floor = window.max_future_seconds, window.min_ts
        rate_check = rate.check

        def fused(event: Event, now: float) -> str | None:
            if not low <= event.value <= high:
                return value_range.check(event, now)
            ts = event.ts
            if ts > now + future or ts < floor:
                return window.check(event, now)
            return rate_check(event, now)

        return fused

    def each(event: Event, now: float) -> str | None:
        for rule in rules:
            reason = rule.check(event, now)
            if reason is not None:
                return reason
        return None

    return each


def _is_num(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _number(key: str, value: object, default: float, *, minimum: float | None = None) -> float:
    if value is None:
        return default
    if not _is_num(value) or (minimum is not None and float(value) < minimum):  # type: ignore[arg-type]
        lower = "" if minimum is None else f" >= {minimum:g}"
        raise QualityConfigError(f"{key}={value!r}: expected a finite number{lower}")
    return float(value)  # type: ignore[arg-type]
