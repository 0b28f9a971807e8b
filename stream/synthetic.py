"""A synthetic rating stream with known drift points, for the demo, tests and benchmarks.

Ratings come from latent user and item factors plus biases (clipped to [1, 5]); users and
items are drawn with a Zipf-like popularity skew. At each drift point the regime changes:
most users get new tastes (factors and bias redrawn) and item biases shift, so a learner's
error jumps and then recovers. With ``drift_kind="population"`` tastes never change but
the active population does: each regime draws its users from another segment and items
with a reshuffled popularity, and each new segment rates higher or lower on average (the
setting where a model fine-tuned only on fresh data forgets, and replay helps: what it
learned about the old segment is still true). Everything is vectorised with numpy in
chunks, each chunk seeded from ``(seed, chunk)``, so a stream is the same on every run
and every pass.

>>> s = SyntheticStream(n_events=6, drift_at=(3,), seed=7)
>>> [s.regime_of(i) for i in range(6)], s.drift_points
([0, 0, 0, 1, 1, 1], (3,))
>>> ev = next(iter(s))
>>> ev.event_id, 1.0 <= ev.value <= 5.0, ev.ts >= s.start_ts
('syn-7-0', True, True)
"""

from __future__ import annotations

import bisect
import gzip
import logging
import math
import os
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec
import numpy as np

from stream.schema import MAX_EVENT_BYTES, Event, encode
from stream.source import IterSource

if TYPE_CHECKING:
    from stream.synthetic_implicit import ImplicitStream

__all__ = ["CORRUPTIONS", "SyntheticSource", "SyntheticStream", "write"]

log = logging.getLogger(__name__)

#: How :meth:`SyntheticStream.raw` breaks a record, and the ``Rejected.kind`` it must get.
CORRUPTIONS: dict[str, str] = {
    "truncated": "malformed", "not_utf8": "encoding", "oversize": "too_large",
    "missing_field": "schema", "nan_string": "schema", "empty_id": "schema",
    "unknown_type": "schema", "wrong_type": "schema", "unknown_field": "schema",
    "non_finite": "schema", "bad_ts": "schema",
}
_KINDS = tuple(CORRUPTIONS)
_CHUNK = 8192
_MEAN, _USER_BIAS, _ITEM_BIAS, _SIGNAL = 3.5, 0.3, 0.5, 0.8
_DRIFT_SHARE, _DRIFT_ITEM_SHIFT, _SEGMENT_SHIFT = 0.8, 0.8, 0.8


def _popularity(n: int, rng: np.random.Generator, skew: float = 1.0) -> np.ndarray:
    """Zipf-like probabilities over ``n`` ids, the ranks shuffled among the ids."""
    weights = 1.0 / (rng.permutation(n) + 1.0) ** skew
    return weights / weights.sum()


def _corrupt(event: Event, kind: str) -> bytes:
    """Break ``event``'s wire form in the way ``kind`` names (see :data:`CORRUPTIONS`)."""
    wire = encode(event)
    d = msgspec.structs.asdict(event)
    if d["context"] is None:
        del d["context"]
    match kind:
        case "truncated":
            return wire[: len(wire) * 2 // 3]
        case "not_utf8":
            return wire.replace(b'"user_id":"', b'"user_id":"\xff\xfe', 1)
        case "oversize":
            d["context"] = {"pad": "x" * (MAX_EVENT_BYTES + 1)}
        case "missing_field":
            del d["item_id"]
        case "nan_string":
            d["value"] = "NaN"
        case "empty_id":
            d["user_id"] = ""
        case "unknown_type":
            d["type"] = "like"
        case "wrong_type":
            d["item_id"] = 17
        case "unknown_field":
            d["rating"] = d["value"]
        case "non_finite":
            d["value"] = "<inf>"
            return msgspec.json.encode(d).replace(b'"<inf>"', b"1e999", 1)
        case "bad_ts":
            d["ts"] = "yesterday"
        case _:
            raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(_KINDS)}")
    return msgspec.json.encode(d)


class SyntheticStream:
    """Rating events for ``n_events`` steps, the regime changing at each of ``drift_at``.

    Iterating yields :class:`~stream.schema.Event` objects in time order (``ts`` grows by
    about ``1 / events_per_second`` per event), ids ``syn-{seed}-{i}``, users ``u{n}``,
    items ``i{n}``. :meth:`raw` yields the same stream as wire bytes, with a share
    ``invalid_rate`` of the records broken (:meth:`corruption_plan` says which and how).
    Users are drawn with probability proportional to ``1 / rank ** user_skew`` (1.0: Zipf;
    a lower skew keeps the most active user's share of a big population human: at 1.0 the
    top user of 20,000 makes 9.5% of all events, at 0.5 of 1,000,000 about 0.05%).
    Drift points at or past ``n_events`` are never reached and left out of ``drift_points``.

    >>> s = SyntheticStream(n_events=1000, invalid_rate=0.1, seed=1)
    >>> from stream.schema import decode, Rejected
    >>> bad = sum(isinstance(decode(b), Rejected) for b in s.raw())
    >>> bad == len(s.corruption_plan()), 60 < bad < 140
    (True, True)
    """

    def __init__(self, n_users: int = 200, n_items: int = 300, n_events: int = 10_000,
                 drift_at: Sequence[int] = (5000,), n_factors: int = 4, noise: float = 0.3,
                 seed: int = 42, start_ts: float = 1_700_000_000.0,
                 events_per_second: float = 10.0, invalid_rate: float = 0.0,
                 drift_kind: Literal["tastes", "population"] = "tastes",
                 user_skew: float = 1.0):
        self.n_users = n_users
        self.n_items = n_items
        self.n_events = n_events
        self.drift_at = drift_at
        self.n_factors = n_factors
        self.noise = noise
        self.seed = seed
        self.start_ts = start_ts
        self.events_per_second = events_per_second
        self.invalid_rate = invalid_rate
        self.drift_kind = drift_kind
        self.user_skew = user_skew
        if user_skew < 0:
            raise ValueError(f"user_skew={user_skew}: expected >= 0 (0: uniform)")
        if drift_kind not in ("tastes", "population"):
            raise ValueError(f"drift_kind {drift_kind!r}: expected 'tastes' or 'population'")
        if min(n_users, n_items, n_factors) < 1 or n_events < 0:
            raise ValueError("need n_users, n_items, n_factors >= 1 and n_events >= 0")
        if not 0.0 <= invalid_rate <= 1.0 or events_per_second <= 0 or noise < 0:
            raise ValueError("need 0 <= invalid_rate <= 1, events_per_second > 0, noise >= 0")
        if any(d <= 0 for d in drift_at) or list(drift_at) != sorted(set(drift_at)):
            raise ValueError(f"drift_at must be strictly increasing and positive: {drift_at}")
        self._drift = tuple(int(d) for d in drift_at if d < n_events)
        rng = np.random.default_rng([seed, 0])
        self._p_user = _popularity(n_users, rng, user_skew)
        self._p_item = _popularity(n_items, rng)
        self._item_f = rng.normal(size=(n_items, n_factors))
        user_f = rng.normal(size=(n_users, n_factors))
        user_b = rng.normal(0.0, _USER_BIAS, n_users)
        item_b = rng.normal(0.0, _ITEM_BIAS, n_items)
        self._regimes = [(user_f, user_b, item_b)]
        n_regimes = len(self._drift) + 1
        if drift_kind == "population":
            # Tastes never change; who is active does: regime r draws its users from the
            # r-th segment of the population (which rates higher or lower on average) and
            # items with a reshuffled popularity.
            segments = np.array_split(np.arange(n_users), n_regimes)
            user_b = user_b.copy()
            for seg in segments[1:]:
                user_b[seg] += rng.choice((-1.0, 1.0)) * _SEGMENT_SHIFT
            self._regimes = [(user_f, user_b, item_b)]
            self._p_users = []
            self._p_items = []
            for r, seg in enumerate(segments):
                p_user = np.zeros(n_users)
                p_user[seg] = _popularity(len(seg), rng, user_skew)
                self._p_users.append(p_user / p_user.sum())
                self._p_items.append(self._p_item if r == 0 else rng.permutation(self._p_item))
                if r:
                    self._regimes.append(self._regimes[0])
            return
        self._p_users = [self._p_user] * n_regimes
        self._p_items = [self._p_item] * n_regimes
        for _ in self._drift:
            moved = rng.random(n_users) < _DRIFT_SHARE
            user_f, user_b = user_f.copy(), user_b.copy()
            user_f[moved] = rng.normal(size=(int(moved.sum()), n_factors))
            user_b[moved] = rng.normal(0.0, _USER_BIAS, int(moved.sum()))
            item_b = item_b + rng.normal(0.0, _DRIFT_ITEM_SHIFT, n_items)
            self._regimes.append((user_f, user_b, item_b))

    @property
    def drift_points(self) -> tuple[int, ...]:
        """Indices of the first event of each new regime."""
        return self._drift

    def regime_of(self, i: int) -> int:
        """The regime (0 before the first drift point) that event ``i`` comes from."""
        return bisect.bisect_right(self._drift, i)

    def __len__(self) -> int:
        return self.n_events

    def _chunk(self, c: int) -> list[Event]:
        start, end = c * _CHUNK, min((c + 1) * _CHUNK, self.n_events)
        rng = np.random.default_rng([self.seed, 1, c])
        idx = np.arange(start, end)
        regime = np.searchsorted(np.asarray(self._drift, dtype=np.int64), idx, side="right")
        users = np.empty(end - start, dtype=np.int64)
        items = np.empty(end - start, dtype=np.int64)
        for r in np.unique(regime):
            m = regime == r
            users[m] = rng.choice(self.n_users, int(m.sum()), p=self._p_users[r])
            items[m] = rng.choice(self.n_items, int(m.sum()), p=self._p_items[r])
        ts = self.start_ts + (idx + rng.random(end - start)) / self.events_per_second
        value = _MEAN + self.noise * rng.standard_normal(end - start)
        for r in np.unique(regime):
            m = regime == r
            user_f, user_b, item_b = self._regimes[r]
            dot = np.einsum("ij,ij->i", user_f[users[m]], self._item_f[items[m]])
            value[m] += user_b[users[m]] + item_b[items[m]] + \
                _SIGNAL * dot / math.sqrt(self.n_factors)
        rating = np.round(np.clip(value, 1.0, 5.0), 2)
        prefix = f"syn-{self.seed}-"
        return [Event(f"{prefix}{i}", f"u{u}", f"i{it}", "rating", v, t) for i, u, it, v, t in
                zip(idx.tolist(), users.tolist(), items.tolist(), rating.tolist(),
                    np.round(ts, 3).tolist(), strict=True)]

    def _plan(self, c: int) -> dict[int, str]:
        start, end = c * _CHUNK, min((c + 1) * _CHUNK, self.n_events)
        if self.invalid_rate <= 0.0:
            return {}
        rng = np.random.default_rng([self.seed, 2, c])
        broken = rng.random(end - start) < self.invalid_rate
        kinds = rng.integers(0, len(_KINDS), end - start)
        return {start + j: _KINDS[kinds[j]] for j in np.flatnonzero(broken).tolist()}

    def _chunks(self) -> range:
        return range(-(-self.n_events // _CHUNK))

    def __iter__(self) -> Iterator[Event]:
        for c in self._chunks():
            yield from self._chunk(c)

    def raw(self) -> Iterator[bytes]:
        """Yield every event as wire bytes, those in :meth:`corruption_plan` broken."""
        for c in self._chunks():
            plan = self._plan(c)
            for i, event in enumerate(self._chunk(c), c * _CHUNK):
                kind = plan.get(i)
                yield encode(event) if kind is None else _corrupt(event, kind)

    def corruption_plan(self) -> dict[int, str]:
        """Map each index that :meth:`raw` breaks to how (a key of :data:`CORRUPTIONS`)."""
        plan: dict[int, str] = {}
        for c in self._chunks():
            plan.update(self._plan(c))
        return plan


class SyntheticSource(IterSource):
    """A :class:`~stream.source.Source` over :meth:`SyntheticStream.raw`, topic ``synthetic``.

    Offsets are event indices; ``start_offset`` resumes right at that index.

    >>> src = SyntheticSource(SyntheticStream(n_events=3), batch_size=2)
    >>> [r.offset for r in src.poll()], [r.offset for r in src.poll()], src.exhausted
    ([0, 1], [2], True)
    """

    def __init__(self, stream: SyntheticStream, batch_size: int = 1000, start_offset: int = 0):
        super().__init__("synthetic", batch_size, start_offset)
        self.stream = stream

    def _open(self) -> Iterator[bytes]:
        return islice(self.stream.raw(), self.start_offset, None)


def write(stream: SyntheticStream | ImplicitStream, path: str | os.PathLike[str],
          format: Literal["jsonl", "csv", "movielens"] = "jsonl", *,
          include_invalid: bool = False) -> int:
    r"""Dump ``stream`` to ``path`` (gzip when it ends in ``.gz``); return the rows written.

    ``csv`` has the header ``userId,movieId,rating,timestamp``; ``movielens`` is ``u.data``'s
    tab-separated form. ``include_invalid`` (jsonl only) writes :meth:`~SyntheticStream.raw`.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> write(SyntheticStream(n_events=2, seed=3), path, "csv")
    2
    >>> path.read_text().splitlines()[0]
    'userId,movieId,rating,timestamp'
    """
    if include_invalid and format != "jsonl":
        raise ValueError(f"{path}: include_invalid needs format 'jsonl', not {format!r}")
    if format == "jsonl":
        rows = stream.raw() if include_invalid else (encode(e) for e in stream)
    elif format in ("csv", "movielens"):
        sep = "," if format == "csv" else "\t"
        rows = (sep.join((e.user_id, e.item_id, repr(e.value), repr(e.ts))).encode()
                for e in stream)
    else:
        raise ValueError(f"{path}: unknown format {format!r}; use jsonl, csv or movielens")
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    n = 0
    with opener(Path(path), "wb") as fh:
        if format == "csv":
            fh.write(b"userId,movieId,rating,timestamp\n")
        for row in rows:
            fh.write(row + b"\n")
            n += 1
    log.info("wrote %d %s rows of %s to %s", n, format, "raw" if include_invalid else "events",
             path)
    return n
