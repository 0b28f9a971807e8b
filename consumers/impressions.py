"""Join clicks to the impressions that showed them; unclicked shown items become negatives.

:class:`ImpressionJoin` keeps the impressions of the last ``window`` seconds (event time) in
a bounded state. A positive event (``click``, ``cart``, ``purchase`` by default) of user
``u`` on item ``i`` at time ``t`` joins the most recent live impression of ``u`` that showed
``i`` with ``ts <= t + skew`` and ``t - ts <= window``; it yields a positive
:class:`Sample`. Each shown slot (impression, item) joins **at most once**: a cart after the
click of the same slot, or a record delivered again after a restart, is counted as a
``repeat`` and yields nothing. Positives that no impression showed are ``unmatched`` (organic
clicks).

Time is the events' watermark: the largest ``ts`` of the events joined so far. An
impression whose ``ts + window`` is behind it **expires**: each item it showed that was not
joined yields a negative :class:`Sample` (label 0); only events move it, since only the
event stream can tell that no click can still come. Impressions expire in arrival order (one
that arrives late waits behind earlier ones). With more than ``max_impressions`` live, the
oldest is **evicted**: its outcome is unknown, so it yields no negatives (counted in
``evicted``). An impression id seen before (live, or among the last ``max_impressions``
finished ones) is a ``duplicate`` and ignored, so a replay never counts negatives twice.

The two streams come from two topics, so after a restart or any backlog one can run ahead
of the other. While the impressions are known to lag (``lagging``, set by the feed from the
consumer's lag), an event later than the newest impression (``ts + skew`` beyond it) is
**held** (at most ``max_impressions`` of them, in order) and joined once impressions reach
its time or the impression topic has caught up (:meth:`ImpressionJoin.release`), so a click
read before its impression still joins it and the impression does not expire unclicked.

State is plain data: :meth:`ImpressionJoin.snapshot` is JSON-able and
``ImpressionJoin(..., state=snapshot)`` resumes exactly where the snapshot was taken, so
the join can be checkpointed with the learner (it also pickles).

>>> from stream.impression import Impression
>>> from stream.schema import Event
>>> join = ImpressionJoin(window=60.0)
>>> join.add(Impression("imp-1", "u1", ("a", "b", "c"), ts=100.0))
[]
>>> [(s.item, s.label) for s in join.observe(Event("e1", "u1", "b", "click", 1.0, 110.0))]
[('b', 1)]
>>> [(s.item, s.label) for s in join.observe(Event("e2", "u9", "x", "view", 1.0, 200.0))]
[('a', 0), ('c', 0)]
>>> join.counters["joined"], join.counters["expired"], join.counters["negative"]
(1, 1, 2)
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import msgspec

from stream.impression import Impression, decode_impression
from stream.schema import Event, Rejected

__all__ = ["COUNTERS", "ImpressionFeed", "ImpressionJoin", "Sample"]

log = logging.getLogger(__name__)

#: The counters of :attr:`ImpressionJoin.counters`, in this order.
COUNTERS = ("impressions", "joined", "expired", "negative", "evicted", "unmatched", "repeat",
            "duplicate")


class Sample(NamedTuple):
    """A labelled (user, item): 1 for a joined positive, 0 for a shown and unclicked item."""

    user: str
    item: str
    label: int
    ts: float
    impression_id: str
    event_type: str | None = None  # the positive's type; None for negatives


class _Held(NamedTuple):
    """An event waiting for the impression stream to reach its time (what the join needs)."""

    user_id: str
    item_id: str
    type: str
    ts: float


class _Live:
    """One live impression: what it showed and which of those items joined."""

    __slots__ = ("items", "joined", "ts", "user")

    def __init__(self, user: str, ts: float, items: tuple[str, ...], joined: set[str]) -> None:
        self.user = user
        self.ts = ts
        self.items = items
        self.joined = joined


class ImpressionJoin:
    """A bounded, checkpointable impression-click join (see the module).

    ``window`` (seconds of event time, default 1800), ``max_impressions`` (live impressions
    kept, default 100,000), ``skew`` (seconds a click may precede its impression's ``ts``,
    for producer clocks, default 0) and ``positive_types`` are the configuration; ``state``
    a :meth:`snapshot` to resume from.
    """

    def __init__(self, window: float = 1800.0, max_impressions: int = 100_000, *,
                 skew: float = 0.0,
                 positive_types: Iterable[str] = ("click", "cart", "purchase"),
                 state: dict[str, Any] | None = None) -> None:
        if window <= 0 or max_impressions < 1 or skew < 0:
            raise ValueError(f"window={window} and max_impressions={max_impressions} must be "
                             f"positive, skew={skew} not negative")
        self.window = window
        self.max_impressions = max_impressions
        self.skew = skew
        self.positive_types = frozenset(positive_types)
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._live: OrderedDict[str, _Live] = OrderedDict()
        self._index: dict[tuple[str, str], list[str]] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self._watermark = float("-inf")
        self._imp_watermark = float("-inf")  # the newest impression's ts
        self._held: deque[_Held] = deque()  # events waiting for the impressions to catch up
        self.lagging = False  # the impression stream is behind (the feed sets it)
        if state is not None:
            self._restore(state)

    # inputs -------------------------------------------------------------------------
    def add(self, impression: Impression) -> list[Sample]:
        """Remember ``impression``; return the negatives of impressions it expired."""
        iid = impression.impression_id
        if iid in self._live or iid in self._done:
            self.counters["duplicate"] += 1
            return []
        self.counters["impressions"] += 1
        self._live[iid] = _Live(impression.user_id, impression.ts, tuple(impression.items),
                                set())
        for item in impression.items:
            self._index.setdefault((impression.user_id, item), []).append(iid)
        if impression.ts > self._imp_watermark:
            self._imp_watermark = impression.ts
        while len(self._live) > self.max_impressions:
            self._finish(next(iter(self._live)))
            self.counters["evicted"] += 1
        return self._release_until(self._imp_watermark)

    def observe(self, event: Event) -> list[Sample]:
        """Join ``event`` if it is a positive; return it and the negatives it expired.

        While ``lagging``, an event later than the newest impression waits (returns ``[]``;
        its samples come from a later :meth:`add` or :meth:`release`).
        """
        if self._held or (self.lagging and event.ts + self.skew > self._imp_watermark):
            self._held.append(_Held(event.user_id, event.item_id, event.type, event.ts))
            out: list[Sample] = []
            while len(self._held) > self.max_impressions:  # bounded: the oldest goes ahead
                out.extend(self._apply(self._held.popleft()))
            return out
        return self._apply(event)

    def release(self) -> list[Sample]:
        """Join every held event (the impression topic has caught up)."""
        return self._release_until(float("inf"))

    def flush(self) -> list[Sample]:
        """Join the held events and expire every live impression (end of a finite stream)."""
        out = self.release()
        while self._live:
            out.extend(self._expire(next(iter(self._live))))
        return out

    @property
    def watermark(self) -> float:
        """The largest event ``ts`` joined (``-inf`` before any)."""
        return self._watermark

    @property
    def held(self) -> int:
        """Events waiting for the impressions to catch up."""
        return len(self._held)

    def __len__(self) -> int:
        """Live impressions."""
        return len(self._live)

    # state --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole learned state as JSON-able data (resume with ``state=``)."""
        return {
            "watermark": None if self._watermark == float("-inf") else self._watermark,
            "impressions_watermark": (None if self._imp_watermark == float("-inf")
                                      else self._imp_watermark),
            "held": [list(h) for h in self._held],
            "counters": dict(self.counters),
            "live": [[iid, e.user, e.ts, list(e.items), sorted(e.joined)]
                     for iid, e in self._live.items()],
            "done": list(self._done),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        wm = state.get("watermark")
        self._watermark = float("-inf") if wm is None else float(wm)
        iwm = state.get("impressions_watermark")  # absent in versions before it existed
        self._imp_watermark = float("-inf") if iwm is None else float(iwm)
        self._held.extend(_Held(u, i, t, float(ts)) for u, i, t, ts in state.get("held", ()))
        self.counters.update({k: int(v) for k, v in state["counters"].items()})
        for iid, user, ts, items, joined in state["live"]:
            self._live[iid] = _Live(user, float(ts), tuple(items), set(joined))
            for item in items:
                self._index.setdefault((user, item), []).append(iid)
        self._done.update(dict.fromkeys(state["done"]))

    # pieces -------------------------------------------------------------------------
    def _apply(self, event: Event | _Held) -> list[Sample]:
        out: list[Sample] = []
        if event.type in self.positive_types:
            sample = self._join(event)
            if sample is not None:
                out.append(sample)
        out.extend(self._advance(event.ts))
        return out

    def _release_until(self, ts: float) -> list[Sample]:
        out: list[Sample] = []
        held = self._held
        while held and held[0].ts + self.skew <= ts:
            out.extend(self._apply(held.popleft()))
        return out

    def _join(self, event: Event | _Held) -> Sample | None:
        ids = self._index.get((event.user_id, event.item_id))
        best: str | None = None
        for iid in reversed(ids or ()):  # most recent first
            entry = self._live[iid]
            if entry.ts <= event.ts + self.skew and event.ts - entry.ts <= self.window:
                if event.item_id in entry.joined:
                    self.counters["repeat"] += 1
                    return None
                best = iid
                break
        if best is None:
            self.counters["unmatched"] += 1
            return None
        entry = self._live[best]
        entry.joined.add(event.item_id)
        self.counters["joined"] += 1
        return Sample(event.user_id, event.item_id, 1, event.ts, best, event.type)

    def _advance(self, ts: float) -> list[Sample]:
        if ts > self._watermark:
            self._watermark = ts
        out: list[Sample] = []
        while self._live:
            iid, entry = next(iter(self._live.items()))
            if entry.ts + self.window >= self._watermark:
                break
            out.extend(self._expire(iid))
        return out

    def _expire(self, iid: str) -> list[Sample]:
        entry = self._finish(iid)
        self.counters["expired"] += 1
        negatives = [Sample(entry.user, item, 0, entry.ts, iid) for item in entry.items
                     if item not in entry.joined]
        self.counters["negative"] += len(negatives)
        return negatives

    def _finish(self, iid: str) -> _Live:
        entry = self._live.pop(iid)
        for item in entry.items:
            key = (entry.user, item)
            ids = self._index[key]
            ids.remove(iid)
            if not ids:
                del self._index[key]
        self._done[iid] = None
        if len(self._done) > self.max_impressions:
            self._done.popitem(last=False)
        return entry


class ImpressionFeed:
    """The learner's side of the join: impression records and events in, negatives out.

    :meth:`record` takes a record of ``topic`` (an impression; one that does not decode is
    counted in ``counters["invalid"]`` and skipped; with the learner's ``pseudonymizer`` its
    user id is pseudonymised as the events' are), :meth:`event` each learned event; the
    negatives they release go to ``learn_negative(sample)``. The join's state rides in the
    learner's checkpoint (:meth:`snapshot` / :meth:`restore`), with the positions of both
    topics, so a restarted learner neither joins a slot twice nor loses a pending one.

    >>> from stream.impression import encode_impression
    >>> got = []
    >>> feed = ImpressionFeed("impressions", ImpressionJoin(window=60.0), got.append)
    >>> feed.record(encode_impression(Impression("imp-1", "u1", ("a", "b"), ts=100.0)))
    >>> feed.record(b"not json")
    >>> feed.event(Event("e1", "u1", "a", "click", 1.0, 110.0))
    >>> feed.event(Event("e2", "u2", "x", "view", 1.0, 500.0))
    >>> [(s.item, s.label) for s in got], feed.counters["joined"], feed.counters["invalid"]
    ([('b', 0)], 1, 1)
    """

    def __init__(self, topic: str, join: ImpressionJoin,
                 learn_negative: Callable[[Sample], object], *,
                 pseudonymizer: Callable[[str], str] | None = None,
                 track_lag: bool = False) -> None:
        self.topic = topic
        self.join = join
        self.learn_negative = learn_negative
        self.pseudonymizer = pseudonymizer  # the learner's: impressions join its events' ids
        self.invalid = 0
        # with track_lag (a Kafka source reporting lag) the impressions count as behind until
        # every partition of the topic reported lag 0; without it they are never behind
        self.track_lag = track_lag
        self._lags: dict[int, int] = {}
        join.lagging = track_lag

    def lag(self, partition: int, lag: int) -> None:
        """The consumer's lag on a partition of the impression topic (after a poll)."""
        self._lags[partition] = lag
        if self.track_lag:
            self.join.lagging = any(v > 0 for v in self._lags.values())

    def order(self, records: list[Any]) -> list[Any]:
        """A polled batch with its impression records first (each partition keeps its order).

        The learner learns events as they come; only the join cares, and a click read in the
        same batch as its impression then finds it.
        """
        topic = self.topic
        if all(r.topic != topic for r in records):
            return records
        return [r for r in records if r.topic == topic] + [r for r in records if r.topic != topic]

    def end_batch(self) -> None:
        """After a batch: join the held events if the impressions have caught up."""
        if not self.join.lagging and self.join.held:
            self._negatives(self.join.release())

    @property
    def counters(self) -> dict[str, int]:
        """The join's counters plus ``invalid`` (impression records that did not decode)."""
        return {**self.join.counters, "invalid": self.invalid}

    def record(self, raw: bytes | None) -> None:
        """Take one impression record (raw bytes of ``topic``)."""
        found = decode_impression(raw or b"")
        if isinstance(found, Rejected):
            self.invalid += 1
            log.debug("impression record refused: %s", found.reason)
            return
        if self.pseudonymizer is not None:  # idempotent: a pseudonymised logger is fine too
            found = msgspec.structs.replace(found, user_id=self.pseudonymizer(found.user_id))
        self._negatives(self.join.add(found))

    def event(self, event: Event) -> None:
        """Join a learned event; learn the negatives it released."""
        self._negatives(self.join.observe(event))

    def _negatives(self, samples: list[Sample]) -> None:
        for sample in samples:
            if sample.label == 0:
                self.learn_negative(sample)

    def snapshot(self) -> dict[str, Any]:
        """The join state and the invalid count (JSON-able)."""
        return {**self.join.snapshot(), "invalid": self.invalid}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`snapshot` (the join's configuration stays this feed's)."""
        join = self.join
        self.join = ImpressionJoin(join.window, join.max_impressions, skew=join.skew,
                                   positive_types=join.positive_types, state=state)
        self.join.lagging = join.lagging
        self.invalid = int(state.get("invalid", 0))
