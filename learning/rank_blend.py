"""A blend that gives cold users popularity and lets short-term signals take over.

Three parts: recency-decayed popularity (every user), decayed co-occurrence with the user's
last items, and "what follows what" (directed links from the user's last two items). Each
part's scores are divided by their maximum, then mixed:
``popularity + w_co * co_occurrence + w_seq * sequence``.

The weights depend on the user's state when they are scored: **cold** (no history: pure
popularity), **in session** (their previous event was less than ``session_gap`` seconds
ago) or **returning**. Per state, the blend keeps a small grid of candidate weight pairs
and, after every scored event, adds each candidate's NDCG@k on that event (the rank it
would have given the true item, the user's seen items excluded) to a decayed running total;
it then uses the candidate with the best total. So the weights are tuned prequentially, on
past events only, never on later ones.

>>> blend = SessionBlend()
>>> for user, item, ts in [("a", 0, 0.0), ("a", 1, 10.0), ("b", 0, 20.0), ("b", 1, 30.0),
...                        ("c", 2, 40.0), ("c", 2, 41.0)]:
...     _ = blend.score_items(user, now=ts)
...     blend.learn_one(user, item, ts=ts)
>>> blend.state("zz", now=50.0), blend.state("c", now=50.0), blend.state("c", now=1e6)
('cold', 'session', 'returning')
>>> blend.learn_one("d", 0, ts=60.0)
>>> s = blend.score_items("d", now=61.0)   # 1 and 2 are as popular; 1 came with 0 before
>>> bool(s[1] > s[2])
True
"""

from __future__ import annotations

import math

import numpy as np

from learning.rank_sequence import CoOccurrence
from learning.rankers import Popularity

__all__ = ["DEFAULT_GRID", "STATES", "SessionBlend"]

STATES: tuple[str, ...] = ("cold", "session", "returning")
# candidate (w_co, w_seq) pairs; the first is the starting choice
DEFAULT_GRID: tuple[tuple[float, float], ...] = (
    (0.3, 0.0), (0.0, 0.0), (0.1, 0.0), (0.3, 0.3), (1.0, 0.0), (1.0, 0.5), (2.0, 1.0),
    (4.0, 1.0), (4.0, 4.0))


def _unit(scores: np.ndarray) -> np.ndarray:
    top = scores.max() if len(scores) else 0.0
    return scores / top if top > 0 else scores


class SessionBlend:
    """Decayed popularity + co-occurrence + sequence, weights chosen per user state."""

    def __init__(self, *, decay: float = 0.999, session_gap: float = 3600.0,
                 grid: tuple[tuple[float, float], ...] = DEFAULT_GRID, k: int = 10,
                 selection_decay: float = 0.999, history: int = 5):
        if session_gap <= 0:
            raise ValueError(f"session_gap must be > 0, got {session_gap}")
        if not grid:
            raise ValueError("grid needs at least one (w_co, w_seq) pair")
        self.decay = decay
        self.session_gap = session_gap
        self.grid = tuple(grid)
        self.k = k
        self.selection_decay = selection_decay
        self.history = history
        self.popularity = Popularity(decay)
        self.co_occurrence = CoOccurrence(history, symmetric=True, decay=0.9995,
                                          position_decay=0.7)
        self.sequence = CoOccurrence(2, symmetric=False, decay=0.9995, position_decay=0.3)
        self.n_items = 0
        self._weights = np.array(self.grid, dtype=np.float64)  # G x 2
        self._gains = {state: np.zeros(len(self.grid)) for state in STATES[1:]}
        self._last_ts: dict[str, float] = {}
        self._seen: dict[str, set[int]] = {}
        self._clock = -math.inf
        self._cache: tuple[str, int, np.ndarray] | None = None
        self._events = 0

    def parts(self) -> dict[str, object]:
        """The blended models by name (each a ranker of its own)."""
        return {"popularity": self.popularity, "co_occurrence": self.co_occurrence,
                "sequence": self.sequence}

    def state(self, user: str, now: float | None = None) -> str:
        """``cold``, ``session`` or ``returning`` for ``user`` at time ``now``."""
        last = self._last_ts.get(user)
        if last is None:
            return "cold"
        now = self._clock if now is None else now
        return "session" if now - last < self.session_gap else "returning"

    def weights(self, state: str) -> tuple[float, float]:
        """The (w_co, w_seq) pair in use for ``state`` (cold: popularity only)."""
        if state == "cold":
            return (0.0, 0.0)
        return self.grid[int(np.argmax(self._gains[state]))]

    def _parts(self, user: str) -> np.ndarray:
        """3 x n matrix of max-normalised part scores (cached for the learn that follows)."""
        if self._cache is not None and self._cache[:2] == (user, self._events):
            return self._cache[2]
        stacked = np.stack([_unit(self.popularity.score_items(user)),
                            _unit(self.co_occurrence.score_items(user)),
                            _unit(self.sequence.score_items(user))])
        self._cache = (user, self._events, stacked)
        return stacked

    def part_scores(self, user: str) -> dict[str, np.ndarray]:
        """Each part's (max-normalised) scores for ``user``, by part name."""
        if self.n_items == 0:
            return {name: np.zeros(0) for name in self.parts()}
        return dict(zip(self.parts(), self._parts(user), strict=True))

    def score_items(self, user: str, now: float | None = None) -> np.ndarray:
        """Blended scores; ``now`` (default: the latest event's time) sets the user's state."""
        if self.n_items == 0:
            return np.zeros(0)
        w_co, w_seq = self.weights(self.state(user, now))
        parts = self._parts(user)
        return parts[0] + w_co * parts[1] + w_seq * parts[2]

    def candidate_mixes(self, user: str) -> np.ndarray:
        """G x n: every grid candidate's blended scores (the straightforward, dense form)."""
        p = self._parts(user)
        w = self._weights
        return p[0] + (w[:, :1] * p[1] + w[:, 1:] * p[2])

    def candidate_ranks(self, user: str, item: int, exclude: np.ndarray) -> np.ndarray:
        """Rank of ``item`` under every grid candidate, as ``rank_of(candidate_mixes(user))``.

        A row can only outrank the target under some candidate if its popularity reaches
        the lowest target score or one of its personal parts is non-zero (every other row
        scores its popularity alone under all candidates), so only those few rows are mixed,
        for all candidates at once. ``exclude`` must not hold ``item``.
        """
        p = self._parts(user)
        w = self._weights
        target = p[0, item] + (w[:, 0] * p[1, item] + w[:, 1] * p[2, item])  # G
        reach = (p[0] >= target.min()) | (p[1] > 0) | (p[2] > 0)
        reach[exclude] = False
        reach[item] = False
        rows = np.flatnonzero(reach)
        sub = p[:, rows]
        values = sub[0] + (w[:, :1] * sub[1] + w[:, 1:] * sub[2])
        t = target[:, None]
        return 1 + np.count_nonzero((values > t) | ((values == t) & (rows > item)), axis=1)

    def learn_one(self, user: str, item: int, weight: float = 1.0, ts: float = 0.0) -> None:
        """Credit each candidate weighting with its NDCG on this event, then learn it."""
        state = self.state(user, ts)
        seen = self._seen.get(user)
        if state != "cold" and item < self.n_items and seen is not None and item not in seen:
            ranks = self.candidate_ranks(user, item, np.fromiter(seen, np.int64, len(seen)))
            gain = np.where(ranks <= self.k, 1.0 / np.log2(ranks + 1.0), 0.0)
            self._gains[state] = self._gains[state] * self.selection_decay + gain
        for part in (self.popularity, self.co_occurrence, self.sequence):
            part.learn_one(user, item, weight, ts)
        self.n_items = max(self.n_items, item + 1)
        self._last_ts[user] = ts
        self._clock = max(self._clock, ts)
        self._seen.setdefault(user, set()).add(item)
        self._events += 1
        self._cache = None
