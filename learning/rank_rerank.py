"""Candidate generation plus a listwise reranker learned online (multinomial logit, Adagrad).

Cheap sources propose candidates for a user: the items most popular under each of five
decays (x0.99, x0.999, x0.9999 per event; half-lives of one day and one week in event
time), each kept exactly by :class:`TopTracker` (every count of a column fades by the same
factor, so only the item just learned can change places), and the strongest co-occurrence
and "what follows what" links from the user's last items (the latter faded by the time
between the two events, :class:`~learning.rank_transitions.TimedTransitions`; a time scale
of one day by default, ``sequence_time_scale=None`` for the untimed links). Each candidate
gets a feature row (:data:`FEATURES`: log popularity per decay relative to the top item, a
short / long trend, the co-occurrence and sequence scores, raw and relative to the list's
best, log item age and time since the item was last seen, its popularity rank in the list
in buckets, how far its popularity is from the level the user usually picks, its x0.999
popularity among cold, in-session and returning users' events, and the personal scores
times the log time since the user's last event). The weights are crossed with
the user's context (time since their last event: < 1 h, < 1 day, later; history length:
1, 2-4, 5-19, 20+), so the one linear model learns per context how much popularity, trend
and the user's recent items matter: score ``f . (w + w_ctx)``.

Learning is listwise: for an event whose item is among the user's candidates (seen items
removed), one Adagrad step on the softmax log-likelihood of the true item over the list,
``grad = f_true - sum_i p_i f_i``; then every source learns the event. Nothing looks ahead.

``score_items(user)`` is defined over the whole catalogue: candidates get their reranker
score shifted above every other row, which keep their decayed popularity in ``[0, 1]``;
:meth:`ListwiseRerank.candidate_scores` returns just the candidate rows and values, so the
evaluation ranks the true item and builds the top-k from a few hundred rows (same result).

>>> r = ListwiseRerank(n_popular=3, n_personal=3)
>>> for t, (user, item) in enumerate([("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 2)]):
...     r.learn_one(user, item, ts=float(t))
>>> rows, values = r.candidate_scores("c")
>>> rows.tolist(), bool(values.min() > 1.0)
([0, 1, 2], True)
>>> dense = r.score_items("c")
>>> dense[rows].tolist() == values.tolist()
True
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from learning import rank_kernels as kernels
from learning.rank_rerank_negatives import RerankNegatives
from learning.rank_sequence import CoOccurrence
from learning.rank_top import TopTracker, TopTrackers
from learning.rank_transitions import TimedTransitions
from learning.rankers import grow

__all__ = ["FEATURES", "ListwiseRerank", "TopTracker"]  # TopTracker: from rank_top

_RENORM_AT = 1e100
FEATURES: tuple[str, ...] = (
    "log_pop_short", "log_pop_mid", "log_pop_long", "log_pop_day", "log_pop_week", "trend",
    "co", "seq", "co_any", "seq_any", "co_raw", "seq_raw", "log_age", "log_idle", "pop_top1",
    "pop_top3", "pop_top10", "pop_top30", "pop_level_gap", "log_pop_cold", "log_pop_session",
    "log_pop_returning", "co_x_gap", "seq_x_gap", "co_x_pop", "pop_x_gap")
_HIST_BUCKETS = np.array([2, 5, 20])  # history length 1, 2-4, 5-19, 20+
_GAPS = np.array([3600.0, 86400.0])  # since the user's last event: < 1 h, < 1 day, later
_N_CTX = 1 + (len(_GAPS) + 1) * (len(_HIST_BUCKETS) + 1)
_GAP_CUTS, _HIST_CUTS = tuple(_GAPS.tolist()), tuple(_HIST_BUCKETS.tolist())
_COLUMNS = np.arange(5)
_POP_CUTS = np.array([1, 3, 10, 30])
_NAN = math.nan


class _Popularity:
    """The reranker's x0.999 popularity column seen as a ranker (for per-part figures)."""

    def __init__(self, model: ListwiseRerank):
        self._model = model

    def score_items(self, user: str) -> np.ndarray:
        return self._model.popularity_scores()


class ListwiseRerank(RerankNegatives):
    """Candidates from popularity and the user's recent items, reranked listwise (module doc).

    Negatives (shown, not taken): :meth:`learn_negative`, from
    :class:`~learning.rank_rerank_negatives.RerankNegatives`.
    """

    def __init__(self, *, decays: tuple[float, float, float] = (0.99, 0.999, 0.9999),
                 half_lives: tuple[float, float] = (86400.0, 7 * 86400.0),
                 n_popular: int = 100, n_personal: int = 50, lr: float = 0.1,
                 history: int = 5, sequence_time_scale: float | None = 86400.0):
        if len(decays) != 3 or not all(0.0 < d < 1.0 for d in decays):
            raise ValueError(f"decays must be three values in (0, 1), got {decays}")
        if len(half_lives) != 2 or not all(h > 0 for h in half_lives):
            raise ValueError(f"half_lives must be two positive values, got {half_lives}")
        if n_popular < 1 or n_personal < 1:
            raise ValueError("n_popular and n_personal must be >= 1")
        self.decays = tuple(decays)
        self.half_lives = tuple(half_lives)
        self.n_popular = n_popular
        self.n_personal = n_personal
        self.lr = lr
        self.history = history
        self.co_occurrence = CoOccurrence(history, symmetric=True, decay=0.9995,
                                          position_decay=0.7)
        self.sequence_time_scale = sequence_time_scale
        self.sequence: CoOccurrence = (
            CoOccurrence(2, symmetric=False, decay=0.9995, position_decay=0.3)
            if sequence_time_scale is None else
            TimedTransitions(2, time_scale=sequence_time_scale, decay=0.9995,
                             position_decay=0.3))
        self.n_items = 0
        # popularity columns: 3 decays per event, 2 half-lives in time; value * scale each
        self._counts = np.zeros((0, 5))
        self._by_state = np.zeros((0, 3))  # x0.999 counts of cold / in-session / returning events
        self._scale = np.ones(5)
        self._tref = math.nan
        self._trackers = TopTrackers(n_popular, 5)  # the five columns' top rows, in arrays
        self._tops = [self._trackers.column(j) for j in range(5)]
        self._first = np.zeros(0)
        self._last = np.zeros(0)
        self._events = 0
        self._w = np.zeros((_N_CTX, len(FEATURES)))
        self._w[0, 1] = 1.0  # start as decayed popularity (x0.999)
        self._g2 = np.full((_N_CTX, len(FEATURES)), 1e-6)
        self._last_ts: dict[str, float] = {}
        self._length: dict[str, int] = {}
        self._seen: dict[str, set[int]] = {}
        self._level: dict[str, list[float]] = {}  # sum and count of log long popularity
        self._clock = -math.inf
        self._now = -math.inf
        # (user, events, now, rows, features, context, raw scores) of the last _scored
        self._cache: tuple[str, int, float, np.ndarray, np.ndarray, int, np.ndarray] | None = None
        self._popular: np.ndarray | None = None  # the trackers' rows (with repeats), when valid

    def __getstate__(self) -> dict[str, object]:
        """Learned state only: the scratch arrays and the per-call cache are rebuilt."""
        return {key: value for key, value in self.__dict__.items()
                if key not in ("_mask", "_buffers_", "_cache")} | {"_cache": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        """Load a checkpoint; a round-5 one (five :class:`TopTracker` objects) converts."""
        self.__dict__.update(state)
        if "_trackers" not in state:
            self._trackers = TopTrackers.of(state["_tops"])  # type: ignore[arg-type]
            self._tops = [self._trackers.column(j) for j in range(5)]
            self._popular = None

    def parts(self) -> dict[str, object]:
        """The candidate sources by name, each with ``score_items(user)`` of its own."""
        return {"popularity": _Popularity(self), "co_occurrence": self.co_occurrence,
                "sequence": self.sequence}

    def popularity_scores(self) -> np.ndarray:
        """Decayed counts (x0.999 per event by default) for every row."""
        return self._counts[: self.n_items, 1] / self._scale[1]

    def weights(self, context: int) -> np.ndarray:
        """The feature weights in use in ``context`` (shared plus the context's own)."""
        return self._w[0] + self._w[context]

    def context(self, user: str, now: float) -> int:
        """0 for a cold user, else ``1 + 4 * gap bucket + history bucket`` at time ``now``."""
        last = self._last_ts.get(user)
        if last is None:
            return 0
        gap = bisect.bisect_right(_GAP_CUTS, now - last)  # == searchsorted(side="right")
        bucket = bisect.bisect_right(_HIST_CUTS, self._length[user])
        return 1 + (len(_HIST_BUCKETS) + 1) * gap + bucket

    def _features(self, rows: np.ndarray, co: np.ndarray, seq: np.ndarray,
                  user: str) -> np.ndarray:
        """len(rows) x F feature matrix (``co``, ``seq``: the user's dense part scores)."""
        f = np.empty((len(rows), len(FEATURES)))
        rel = self._counts[rows]  # a copy: scaled in place (fewer temporaries, same values)
        rel /= self._counts[[t.best for t in self._tops], _COLUMNS]
        rel += 1e-4
        np.log(rel, out=f[:, :5])
        np.subtract(f[:, 0], f[:, 2], out=f[:, 5])
        f[:, 10] = co[rows]
        f[:, 11] = seq[rows]
        personal = f[:, 10:12]  # n x 2
        tops = personal.max(axis=0, initial=0.0)
        if tops[0] > 0 and tops[1] > 0:
            np.divide(personal, tops, out=f[:, 6:8])
        else:
            np.divide(personal, tops, out=f[:, 6:8], where=tops > 0)
            f[:, 6:8][:, tops <= 0] = 0.0
        np.greater(personal, 0.0, out=f[:, 8:10])
        ages = f[:, 12:14]
        ages[:, 0] = self._first[rows]
        ages[:, 1] = self._last[rows]
        np.subtract(self._events, ages, out=ages)
        np.log1p(ages, out=ages)
        ages /= 10.0
        order = np.empty(len(rows), dtype=np.int64)
        order[np.argsort(-f[:, 1], kind="stable")] = np.arange(len(rows))
        f[:, 14:18] = order[:, None] < _POP_CUTS
        level = self._level.get(user)
        f[:, 18] = 0.0 if level is None else -np.abs(f[:, 2] - level[0] / level[1])
        by_state = self._by_state[rows]
        by_state /= np.maximum(by_state.max(axis=0), 1e-300)
        by_state += 1e-4
        np.log(by_state, out=f[:, 19:22])
        gap = self._level_gap(user, self._now)[1]
        f[:, 22:24] = f[:, 6:8] * gap
        f[:, 24] = f[:, 6] * f[:, 1] / 10.0
        f[:, 25] = f[:, 1] * gap
        return f

    def _scored(self, user: str, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Candidate rows (ascending), their features and raw scores, and the context."""
        cache = self._cache
        if cache is not None and len(cache) == 7 and cache[:3] == (user, self._events, now):
            rows, feats, ctx = cache[3], cache[4], cache[5]
        else:
            if self._popular is None:
                self._popular = self._trackers.all_rows()  # repeats: fine
            self._now = now
            ok = False
            if kernels.ENABLED:  # from the parts' sparse terms, no dense pass
                rows, feats, raw, ctx, ok = self._scored_compiled(user, now)
            if not ok:  # numpy (or a tie across a part's cut: argpartition's choice)
                co, seq = self.co_occurrence.score_items(user), self.sequence.score_items(user)
                rows = self._candidate_rows(co, seq)
                if kernels.ENABLED:
                    feats = self._features_compiled(rows, co[rows], seq[rows], user)
                else:
                    feats = self._features(rows, co, seq, user)
                ctx = self.context(user, now)
                raw = (kernels.scores(feats, self._w, ctx) if kernels.ENABLED else
                       feats @ self.weights(ctx))
            self._cache = (user, self._events, now, rows, feats, ctx, raw)
            return rows, feats, raw, ctx
        return rows, feats, cache[6], ctx

    def _scored_compiled(self, user: str, now: float
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, bool]:
        """:meth:`_scored`'s candidates, features and scores in two kernel calls (fused).

        The same kernels as :func:`~learning.rank_kernels.table_candidates`, then
        :meth:`_features_compiled` and :func:`~learning.rank_kernels.scores` (bit for bit);
        ``ok`` False: a tie across a part's cut (the caller takes the numpy way).
        """
        flags, co_buf, seq_buf = self._buffers()
        rows, feats, logs, ages, ok = kernels.candidate_features(  # type: ignore[call-arg]
            self._popular, *self.co_occurrence.kernel_args(user),
            *self.sequence.kernel_args(user), self.n_personal, flags, co_buf, seq_buf,
            self._counts, self._trackers.meta[:, 0], self._first, self._last,
            float(self._events), self._by_state)
        if not ok:
            return rows, feats, feats[:, 0], 0, False
        np.log(logs, out=logs)  # numpy's logs: the reference's bits (see rank_kernels)
        np.log1p(ages, out=ages)
        ctx = self.context(user, now)
        raw = kernels.features_scores(feats, logs, ages, *self._level_gap(user, now),
                                      _POP_CUTS, self._w, ctx)
        return rows, feats, raw, ctx, True

    def _level_gap(self, user: str, now: float) -> tuple[float, float]:
        """The user's level (NaN: none yet) and time-gap factor, as the features use them."""
        level = self._level.get(user)
        last = self._last_ts.get(user)
        gap = 1.0 if last is None else math.log1p(max(now - last, 0.0)) / 15.0
        return (_NAN if level is None else level[0] / level[1]), gap

    def _buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Zeroed scratch arrays of at least ``n_items`` rows (uint8 flags, two floats)."""
        buffers = self.__dict__.get("_buffers_")
        if buffers is None or len(buffers[0]) < self.n_items:
            size = max(self.n_items, 0 if buffers is None else 2 * len(buffers[0]))
            buffers = self._buffers_ = (np.zeros(size, dtype=np.uint8), np.zeros(size),
                                        np.zeros(size))
        return buffers

    def _candidate_rows(self, co: np.ndarray, seq: np.ndarray) -> np.ndarray:
        """The trackers' rows and each part's ``n_personal`` best non-zero rows, ascending."""
        mask = np.zeros(self.n_items, dtype=bool)
        mask[self._popular] = True
        for scores in (co, seq):
            support = np.flatnonzero(scores != 0.0)  # a bool pass: 4x faster than on floats
            if len(support) > self.n_personal:
                keep = np.argpartition(-scores[support], self.n_personal)
                support = support[keep[: self.n_personal]]
            mask[support] = True
        return np.flatnonzero(mask)

    def _features_compiled(self, rows: np.ndarray, co: np.ndarray, seq: np.ndarray,
                           user: str) -> np.ndarray:
        """:meth:`_features` by :func:`learning.rank_kernels.features` (one call)."""
        level, gap = self._level_gap(user, self._now)
        best = self._trackers.meta[:, 0]  # each column's top row
        return kernels.features(rows, self._counts, best, co, seq, self._first, self._last,
                                float(self._events), level, self._by_state, gap, _POP_CUTS)

    def _scratch(self) -> np.ndarray:
        """A bool array of at least ``n_items`` rows, all False (users set and clear rows)."""
        mask = self.__dict__.get("_mask")
        if mask is None or len(mask) < self.n_items:
            mask = self._mask = grow(np.zeros(0, dtype=bool) if mask is None else mask,
                                     self.n_items)
        return mask

    def _seen_mask(self, seen: set[int], rows: np.ndarray) -> np.ndarray:
        """``rows`` in ``seen`` (bool per row) without a pass over every item."""
        mask = self._scratch()
        marked = np.fromiter(seen, np.int64, len(seen))
        mask[marked] = True
        out = mask[rows]
        mask[marked] = False
        return out

    def candidate_scores(self, user: str, now: float | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """The candidate rows (ascending) and their values in :meth:`score_items`.

        ``now`` (default: the latest event's time) sets the user's context.
        """
        if self.n_items == 0:
            return np.empty(0, dtype=np.int64), np.zeros(0)
        rows, _, raw, _ = self._scored(user, self._clock if now is None else now)
        raw = self._skip_discount(user, rows, raw, self._clock if now is None else now)
        return rows, raw - raw.min() + 2.0

    def score_items(self, user: str, now: float | None = None) -> np.ndarray:
        """Every row: candidates above all others (reranked), the rest by decayed popularity."""
        if self.n_items == 0:
            return np.zeros(0)
        dense = self.floor_scores()
        rows, values = self.candidate_scores(user, now)
        dense[rows] = values
        return dense

    def floor_scores(self) -> np.ndarray:
        """:meth:`score_items` outside the candidates: decayed popularity over its max."""
        pop = self.popularity_scores()
        top = pop.max()
        return pop / top if top > 0 else pop.copy()

    def _step(self, user: str, item: int, now: float) -> None:
        """One Adagrad step on ``log softmax(scores)[item]`` over the unseen candidates."""
        rows, feats, raw, ctx = self._scored(user, now)
        at = int(np.searchsorted(rows, item))
        seen = self._seen.get(user, set())
        if at >= len(rows) or rows[at] != item or item in seen:
            return
        if kernels.ENABLED:
            kernels.softmax_step(feats, raw, at, np.fromiter(seen, np.int64, len(seen)), rows,
                                 self._scratch(), self._w, self._g2, ctx, self.lr)
            self._cache = None  # its raw scores came from the old weights
            return
        self._softmax_step(rows, feats, raw, at, seen, ctx)
        self._cache = None

    def _softmax_step(self, rows: np.ndarray, feats: np.ndarray, scores: np.ndarray, at: int,
                      seen: set[int], ctx: int) -> np.ndarray:
        """Adagrad on the linear weights for ``log softmax(scores)[at]`` (seen rows masked).

        Returns ``d log p / d scores`` (the numpy reference of ``kernels.softmax_step``).
        """
        z = scores.copy()
        if seen:
            z[self._seen_mask(seen, rows)] = -np.inf
        p = np.exp(z - z[at])
        p /= p.sum()
        g = -p
        g[at] += 1.0  # d log p_item / d score_i
        grad = g @ feats
        for c in (0, ctx):
            self._g2[c] += grad * grad
            self._w[c] += self.lr * grad / np.sqrt(self._g2[c])
        return g

    def _count(self, item: int, weight: float, ts: float) -> None:
        if math.isnan(self._tref):
            self._tref = ts
        rates = self.__dict__.get("_rates")  # decays and half-lives as arrays, built once
        if rates is None:
            rates = self._rates = (np.array(self.decays), np.array(self.half_lives))
        changed = self._trackers.rescale_and_count(  # scale[:3] /= decays, scale[3:] = growth
            self._counts, self._scale, rates[0], np.exp2((ts - self._tref) / rates[1]),
            _RENORM_AT, item, weight)
        if changed < 0:  # the scale grew past _RENORM_AT: nothing counted yet
            self._counts /= self._scale
            self._by_state /= self._scale[1]
            self._scale[:] = 1.0
            self._tref = ts
            changed = self._trackers.count(self._counts, self._scale, item, weight)
        if changed and (self._popular is None or self._popular.base is not self._trackers.rows):
            self._popular = None  # a copy (not the trackers' view, which follows them)

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """One listwise step (if the user has a history and ``item`` is a candidate), then learn."""
        if user in self._last_ts and item < self.n_items:
            self._step(user, item, ts)
        self._clock = max(self._clock, ts)
        if item >= self.n_items:
            self.n_items = item + 1
            self._counts = grow(self._counts, self.n_items)
            self._first = grow(self._first, self.n_items)
            self._last = grow(self._last, self.n_items)
            self._first[item] = self._events
        if self._events:
            long = self._counts[item, 2] / self._counts[self._trackers.meta[2, 0], 2]
            level = self._level.setdefault(user, [0.0, 0.0])
            level[0] += math.log(long + 1e-4)
            level[1] += 1.0
        state = self.context(user, ts)
        state = 0 if state == 0 else (1 if state <= len(_HIST_BUCKETS) + 1 else 2)
        self._count(item, weight, ts)
        self._by_state = grow(self._by_state, self.n_items)
        self._by_state[item, state] += weight * self._scale[1]
        self._last[item] = self._events
        self.co_occurrence.learn_one(user, item, weight, ts)
        self.sequence.learn_one(user, item, weight, ts)
        self._last_ts[user] = ts
        self._length[user] = self._length.get(user, 0) + 1
        self._seen.setdefault(user, set()).add(item)
        self._events += 1
        self._cache = None
