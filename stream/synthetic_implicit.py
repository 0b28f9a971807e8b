"""A synthetic implicit-feedback stream: sessions, a funnel, trends and a known taste drift.

The stream is a sequence of **sessions**: a user (Zipf-skewed activity) visits several
items in a row (``1 + geometric`` visits, mean ``session_length``). A visit is a small
**funnel** on one item: a ``view`` (skipped with ``direct_click`` probability, a click
straight from a link), then a ``click`` with ``p_click``, a ``cart`` given a click with
``p_cart``, a ``purchase`` given a cart with ``p_purchase``. Within a session the next
item **follows** the current one with ``p_follow``: each item has three fixed successors
among its nearest neighbours in taste space, taken with probabilities 0.6/0.3/0.1, so a
sequence-aware model can learn what follows what. Otherwise the item is a fresh draw:
with ``p_trending`` from the items popular now, else from the user's own top items.

**Popularity trends**: an item's weight is its base (Zipf) popularity times ``0.2 +`` a
bell curve around its own peak in the stream, so items rise and fade. **Taste drift**: at
each of ``drift_at`` (event indices) most users (80%) get new tastes and the base
popularity is reshuffled, so the popular items change. Everything is seeded: the same
arguments give the same events on every run. Events are Event v1 (``value`` 1.0, the
session in ``context["session"]``); ``invalid_rate`` breaks records like
:class:`~stream.synthetic.SyntheticStream` does, and :func:`stream.synthetic.write`
dumps it (``jsonl``) for ``lifelong evaluate``.

>>> s = ImplicitStream(n_events=500, drift_at=(250,), seed=3)
>>> events = list(s)
>>> len(events), events[0].event_id, sorted({e.type for e in events})
(500, 'imp-3-0', ['cart', 'click', 'purchase', 'view'])
>>> events == list(ImplicitStream(n_events=500, drift_at=(250,), seed=3))
True
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

import numpy as np

from stream.schema import Event, encode
from stream.synthetic import _KINDS, _corrupt, _popularity

__all__ = ["ImplicitStream"]

_TOP = 30  # a user's own top items that fresh draws pick from
_NEXT = 3  # successors per item
_NEXT_P = np.array([0.6, 0.3, 0.1])
_SESSIONS_PER_BLOCK = 512
_DRIFT_SHARE, _TREND_FLOOR = 0.8, 0.2


class ImplicitStream:
    """``n_events`` behaviour events of ``n_users`` on ``n_items`` (see the module).

    Iterating yields :class:`~stream.schema.Event` objects in time order, ids
    ``imp-{seed}-{i}``, users ``u{n}``, items ``i{n}``; :meth:`raw` yields wire bytes with
    a share ``invalid_rate`` broken (:meth:`corruption_plan` says which).

    >>> s = ImplicitStream(n_events=2000, invalid_rate=0.05, seed=1)
    >>> from stream.schema import decode, Rejected
    >>> sum(isinstance(decode(b), Rejected) for b in s.raw()) == len(s.corruption_plan())
    True
    """

    def __init__(self, n_users: int = 500, n_items: int = 1000, n_events: int = 20_000,
                 drift_at: Sequence[int] = (10_000,), n_factors: int = 8,
                 session_length: float = 6.0, p_follow: float = 0.6, p_trending: float = 0.4,
                 p_click: float = 0.35, p_cart: float = 0.3, p_purchase: float = 0.5,
                 direct_click: float = 0.1, trend_width: float = 0.15, seed: int = 42,
                 start_ts: float = 1_700_000_000.0, events_per_second: float = 10.0,
                 invalid_rate: float = 0.0) -> None:
        self.n_users = n_users
        self.n_items = n_items
        self.n_events = n_events
        self.drift_at = drift_at
        self.n_factors = n_factors
        self.session_length = session_length
        self.p_follow = p_follow
        self.p_trending = p_trending
        self.p_click = p_click
        self.p_cart = p_cart
        self.p_purchase = p_purchase
        self.direct_click = direct_click
        self.trend_width = trend_width
        self.seed = seed
        self.start_ts = start_ts
        self.events_per_second = events_per_second
        self.invalid_rate = invalid_rate
        if n_users < 1 or n_items < _NEXT + 1 or n_factors < 1 or n_events < 0:
            raise ValueError(f"need n_users >= 1, n_items >= {_NEXT + 1}, n_factors >= 1 "
                             "and n_events >= 0")
        shares = (p_follow, p_trending, p_click, p_cart, p_purchase, direct_click,
                  invalid_rate)
        if not all(0.0 <= p <= 1.0 for p in shares):
            raise ValueError(f"probabilities must be in [0, 1]: {shares}")
        if session_length < 1 or trend_width <= 0 or events_per_second <= 0:
            raise ValueError("need session_length >= 1, trend_width > 0, events_per_second > 0")
        if any(d <= 0 for d in drift_at) or list(drift_at) != sorted(set(drift_at)):
            raise ValueError(f"drift_at must be strictly increasing and positive: {drift_at}")
        self._drift = tuple(int(d) for d in drift_at if d < n_events)
        rng = np.random.default_rng([seed, 10])
        self._p_user = _popularity(n_users, rng)
        item_f = rng.normal(size=(n_items, n_factors))
        self._next = _neighbours(item_f)
        self._peak = rng.random(n_items) * max(n_events, 1)
        user_f = rng.normal(size=(n_users, n_factors))
        base = _popularity(n_items, rng)
        self._base = [base]
        self._top = [_top_items(user_f, item_f)]
        for _ in self._drift:
            moved = rng.random(n_users) < _DRIFT_SHARE
            user_f = user_f.copy()
            user_f[moved] = rng.normal(size=(int(moved.sum()), n_factors))
            base = rng.permutation(base)
            self._base.append(base)
            self._top.append(_top_items(user_f, item_f))

    @property
    def drift_points(self) -> tuple[int, ...]:
        """Indices of the first event of each new taste regime."""
        return self._drift

    def regime_of(self, i: int) -> int:
        """The regime (0 before the first drift point) of event ``i``."""
        return bisect.bisect_right(self._drift, i)

    def successors(self, item: int) -> np.ndarray:
        """The three items that follow ``item`` in sessions, most likely first."""
        return self._next[item].copy()

    def __len__(self) -> int:
        return self.n_events

    def trending(self, i: int) -> np.ndarray:
        """Item probabilities of a trending draw at event index ``i``."""
        width = self.trend_width * max(self.n_events, 1)
        bell = np.exp(-0.5 * ((i - self._peak) / width) ** 2)
        w = self._base[self.regime_of(i)] * (_TREND_FLOOR + bell)
        return w / w.sum()

    def _block(self, b: int, start: int, session0: int) -> list[Event]:
        """Sessions ``b * _SESSIONS_PER_BLOCK...``, first event index ``start``."""
        rng = np.random.default_rng([self.seed, 11, b])
        n_s = _SESSIONS_PER_BLOCK
        users = rng.choice(self.n_users, n_s, p=self._p_user)
        lengths = np.minimum(rng.geometric(1.0 / self.session_length, n_s), 50)
        v = int(lengths.sum())
        visit_user = np.repeat(users, lengths)
        first = np.zeros(v, dtype=bool)
        first[np.concatenate(([0], np.cumsum(lengths)[:-1]))] = True
        view = rng.random(v) >= self.direct_click
        click = ~view | (rng.random(v) < self.p_click)
        cart = click & (rng.random(v) < self.p_cart)
        buy = cart & (rng.random(v) < self.p_purchase)
        per_visit = view.astype(np.int64) + click + cart + buy
        visit_start = start + np.concatenate(([0], np.cumsum(per_visit)[:-1]))
        follow = (rng.random(v) < self.p_follow) & ~first
        pick = rng.choice(_NEXT, v, p=_NEXT_P)
        trend = rng.random(v) < self.p_trending
        own = rng.integers(0, _TOP, v)
        fresh = np.empty(v, dtype=np.int64)
        regime = np.searchsorted(np.asarray(self._drift, dtype=np.int64), visit_start,
                                 side="right")
        for r in np.unique(regime).tolist():
            m = regime == r
            fresh[m] = self._top[r][visit_user[m], own[m]]
        t_idx = np.flatnonzero(trend)
        mid = int(visit_start[v // 2])
        for r in np.unique(regime[t_idx]).tolist():  # one trend snapshot a block and regime
            m = t_idx[regime[t_idx] == r]
            lo = self._drift[r - 1] if r else 0
            hi = self._drift[r] - 1 if r < len(self._drift) else max(mid, lo)
            fresh[m] = rng.choice(self.n_items, len(m), p=self.trending(min(max(mid, lo), hi)))
        items = fresh.tolist()
        nxt, follows, picks = self._next, follow.tolist(), pick.tolist()
        for j in range(1, v):  # the only sequential step: following the previous item
            if follows[j]:
                items[j] = int(nxt[items[j - 1], picks[j]])
        jitter = rng.random(int(per_visit.sum())).tolist()
        out: list[Event] = []
        prefix, n = f"imp-{self.seed}-", 0
        session_of = np.repeat(np.arange(session0, session0 + n_s), lengths).tolist()
        for j, (u, it) in enumerate(zip(visit_user.tolist(), items, strict=True)):
            steps = (("view", view[j]), ("click", click[j]), ("cart", cart[j]),
                     ("purchase", buy[j]))
            for kind, happened in steps:
                if not happened:
                    continue
                idx = start + n
                ts = round(self.start_ts + (idx + jitter[n]) / self.events_per_second, 3)
                out.append(Event(f"{prefix}{idx}", f"u{u}", f"i{it}", kind,  # type: ignore[arg-type]
                                 1.0, ts, {"session": f"s{session_of[j]}"}))
                n += 1
        return out

    def _blocks(self) -> Iterator[tuple[int, list[Event]]]:
        start, b = 0, 0
        while start < self.n_events:
            events = self._block(b, start, b * _SESSIONS_PER_BLOCK)
            yield start, events[: self.n_events - start]
            start += len(events)
            b += 1

    def __iter__(self) -> Iterator[Event]:
        for _, events in self._blocks():
            yield from events

    def _plan(self, start: int, n: int) -> dict[int, str]:
        if self.invalid_rate <= 0.0 or n == 0:
            return {}
        rng = np.random.default_rng([self.seed, 12, start])
        broken = rng.random(n) < self.invalid_rate
        kinds = rng.integers(0, len(_KINDS), n)
        return {start + j: _KINDS[kinds[j]] for j in np.flatnonzero(broken).tolist()}

    def raw(self) -> Iterator[bytes]:
        """Yield every event as wire bytes, those in :meth:`corruption_plan` broken."""
        for start, events in self._blocks():
            plan = self._plan(start, len(events))
            for i, event in enumerate(events, start):
                kind = plan.get(i)
                yield encode(event) if kind is None else _corrupt(event, kind)

    def corruption_plan(self) -> dict[int, str]:
        """Map each index that :meth:`raw` breaks to how (a key of ``CORRUPTIONS``)."""
        plan: dict[int, str] = {}
        for start, events in self._blocks():
            plan.update(self._plan(start, len(events)))
        return plan


def _neighbours(item_f: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Each item's ``_NEXT`` nearest other items by cosine, nearest first."""
    unit = item_f / np.linalg.norm(item_f, axis=1, keepdims=True)
    out = np.empty((len(unit), _NEXT), dtype=np.int64)
    for s in range(0, len(unit), chunk):
        sims = unit[s:s + chunk] @ unit.T
        sims[np.arange(len(sims)), np.arange(s, s + len(sims))] = -np.inf
        part = np.argpartition(-sims, _NEXT, axis=1)[:, :_NEXT]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        out[s:s + len(sims)] = np.take_along_axis(part, order, axis=1)
    return out


def _top_items(user_f: np.ndarray, item_f: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Each user's ``_TOP`` best items by taste (dot product), any order."""
    top = min(_TOP, len(item_f))
    out = np.empty((len(user_f), _TOP), dtype=np.int64)
    for s in range(0, len(user_f), chunk):
        scores = user_f[s:s + chunk] @ item_f.T
        part = np.argpartition(-scores, top - 1, axis=1)[:, :top]
        out[s:s + len(scores)] = part[:, np.arange(_TOP) % top]  # repeats if few items
    return out
