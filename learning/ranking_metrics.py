"""Prequential ranking figures (Vinagre et al. 2014): rank first, score, then learn.

For every event whose user has an earlier event and whose item was seen before and is new
to that user, the caller ranks every known item except those the user already interacted
with and hands the scores here, before the model learns the event. A hit when the item is
in the top ``k``; NDCG@k with a log2 discount (one relevant item: ``1 / log2(rank + 1)``).
Ties go to the newer item (the higher row). Beside HR and NDCG: coverage@k (share of known
items that appeared in any top-k list), intra-list diversity (mean pairwise cosine distance
of a list's item vectors, when the model has vectors) and novelty (mean ``-log2`` of the
recommended items' popularity share). Rolling figures cover the last ``window`` lists.

>>> m = RankingPrequential(k=2, window=10)
>>> m.update(np.array([0.9, 0.1, 0.5]), target=2).rank   # item 0 above: rank 2
2
>>> m.update(np.array([0.9, 0.1, 0.5]), target=1, exclude=np.array([0])).rank
2
>>> s = m.score()
>>> s.n, s.hr, round(s.ndcg, 4), s.coverage
(2, 1.0, 0.6309, 1.0)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import msgspec
import numpy as np

from learning import rank_kernels as kernels
from learning.rankers import grow
from learning.snapshot import PickleSnapshot

__all__ = ["RankOutcome", "RankingPrequential", "RankingScore", "rank_of", "top_k"]


def rank_of(scores: np.ndarray, item: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of row ``item`` in each row of ``scores`` (1-D or 2-D), ``exclude`` removed.

    Ties go to the newer item (the higher row), as a stable sort of rows newest first would
    put them; excluded rows never count (``exclude`` must not hold ``item`` or repeats).

    >>> int(rank_of(np.array([3.0, 5.0, 3.0, 1.0]), 2))
    2
    >>> int(rank_of(np.array([3.0, 5.0, 3.0, 1.0]), 0, exclude=np.array([1])))
    2
    >>> rank_of(np.array([[1.0, 2.0], [2.0, 1.0]]), 0).tolist()
    [2, 1]

    A NaN score for ``item`` ranks it last (NaN compares false, so it would otherwise rank
    first: a model emitting NaN must not score a perfect hit rate):

    >>> int(rank_of(np.array([3.0, np.nan, 1.0]), 1)), rank_of(np.array([[np.nan, 1.0]]), 0)
    (3, array([2]))
    """
    worst = len(scores if scores.ndim == 1 else scores[0]) - (
        0 if exclude is None else len(exclude))
    if scores.ndim == 1:  # one pass each, no axis bookkeeping (the per-event path)
        t = scores[item]
        if t != t:  # NaN
            return np.int64(worst)
        rank = 1 + np.count_nonzero(scores > t) + np.count_nonzero(scores[item + 1 :] == t)
        if exclude is not None and len(exclude):
            ex = scores[exclude]
            rank -= np.count_nonzero((ex > t) | ((ex == t) & (exclude > item)))
        return np.int64(rank)
    s = scores
    target = s[:, item : item + 1]
    ranks = (1 + np.count_nonzero(s > target, axis=1)
             + np.count_nonzero(s[:, item + 1 :] == target, axis=1))
    if exclude is not None and len(exclude):
        ex = s[:, exclude]
        ranks -= np.count_nonzero((ex > target) | ((ex == target) & (exclude > item)), axis=1)
    return np.where(np.isnan(target[:, 0]), worst, ranks)


_MAX_CANDIDATES = 2048
_NO_ROWS = np.empty(0, dtype=np.int64)
_NO_VALUES = np.empty(0)


def _candidates(s: np.ndarray, kk: int) -> np.ndarray:
    """Rows that surely hold the top ``kk`` of ``s`` (few of them), without a full select."""
    n = len(s)
    sample = s[:: max(1, n // 256)]
    m = len(sample)
    for q in (2, kk, 4 * kk, m):
        q = min(q, m)
        t = np.partition(sample, m - q)[m - q]
        if not np.isfinite(t):
            break
        above = np.flatnonzero(s > t)
        if len(above) >= kk:
            if len(above) <= _MAX_CANDIDATES:
                return above
            break  # many distinct values above t: select exactly below
        ties = np.flatnonzero(s == t)
        if len(above) + len(ties) >= kk:  # fill from the tied value, newest rows first
            return np.concatenate([above, ties[len(above) - kk :]])
    finite = np.flatnonzero(np.isfinite(s))
    if len(finite) <= _MAX_CANDIDATES:
        return finite
    t = np.partition(s, n - kk)[n - kk]
    above, ties = np.flatnonzero(s > t), np.flatnonzero(s == t)
    return np.concatenate([above, ties[len(above) - kk :]])


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` best rows, best first, ``exclude`` removed; ties to the newer (higher) row.

    >>> top_k(np.array([1.0, 3.0, 3.0, 2.0]), 3).tolist()
    [2, 1, 3]
    >>> top_k(np.array([1.0, 3.0]), 5, exclude=np.array([1])).tolist()
    [0]
    """
    s = np.asarray(scores, dtype=np.float64)
    if exclude is not None and len(exclude):
        s = s.copy()
        s[exclude] = -np.inf
    n = len(s)
    if n == 0 or k <= 0:
        return np.empty(0, dtype=np.int64)
    kk = min(k, n)
    cand = _candidates(s, kk)
    cand = cand[np.isfinite(s[cand])]
    if len(cand) > 4 * kk:  # keep what reaches the kk-th best value (all its ties): exact
        values = s[cand]
        cand = cand[values >= np.partition(values, len(cand) - kk)[len(cand) - kk]]
    order = np.lexsort((-cand, -s[cand]))
    return cand[order][:kk].astype(np.int64)


def _best_first(rows: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` (<= len) best ``rows`` by ``values``, best first, ties to the higher row."""
    n = len(values)
    if n > 4 * k:  # all that reach the k-th best value (with its ties), then sort those
        kth = np.partition(values, n - k)[n - k]
        if not math.isnan(kth):
            chosen = values >= kth
            rows, values = rows[chosen], values[chosen]
    return rows[np.lexsort((-rows, -values))[:k]]


class RankOutcome(msgspec.Struct, frozen=True):
    """One ranked event: the true item's rank, hit and NDCG, and the top-k list."""

    rank: int
    hit: bool
    ndcg: float
    top: tuple[int, ...]


class RankingScore(msgspec.Struct, frozen=True):
    """The ranking figures so far (``n`` ranked events) and over the last ``window``."""

    n: int
    k: int
    hr: float
    ndcg: float
    coverage: float
    intra_list_diversity: float | None
    novelty: float
    rolling_hr: float
    rolling_ndcg: float
    rolling_coverage: float


def _diversity(vectors: np.ndarray) -> float:
    if len(vectors) < 2:
        return 0.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    sim = unit @ unit.T
    m = len(vectors)
    return float((m * m - sim.sum()) / (m * (m - 1)))  # mean of 1 - cos over pairs i != j


class RankingPrequential(PickleSnapshot):
    """Running HR@k, NDCG@k, coverage@k, diversity and novelty, totals and rolling window.

    Exact sums and bounded deques: a snapshot restored and continued gives the same
    figures as an uninterrupted run.
    """

    def __init__(self, k: int = 10, window: int = 1000):
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k}")
        if window < 1:
            raise ValueError(f"window must be a positive integer, got {window}")
        self.k = k
        self.window = window
        self._n = 0
        self._hits = 0
        self._ndcg = 0.0
        self._covered = np.zeros(0, dtype=bool)
        self._n_items = 0
        self._div_sum = 0.0
        self._div_n = 0
        self._nov_sum = 0.0
        self._nov_n = 0
        self._recent: deque[tuple[bool, float, tuple[int, ...]]] = deque(maxlen=window)

    @property
    def n(self) -> int:
        """Events ranked so far."""
        return self._n

    def update(self, scores: np.ndarray, target: int, exclude: np.ndarray | None = None, *,
               item_vectors: np.ndarray | None = None,
               popularity: np.ndarray | None = None,
               popularity_total: float | None = None) -> RankOutcome:
        """Rank ``target`` among ``scores`` (``exclude`` removed) and add it to the figures.

        ``popularity`` (counts per row; their sum ``popularity_total`` if known) gives
        novelty; ``item_vectors`` gives diversity.
        """
        rank, top = self.measure(scores, target, exclude)
        return self.record(rank, top, len(scores), item_vectors=item_vectors,
                           popularity=popularity, popularity_total=popularity_total)

    def measure(self, scores: np.ndarray, target: int,
                exclude: np.ndarray | None = None) -> tuple[int, np.ndarray]:
        """The target's rank and the top-k rows (the costly half of :meth:`update`)."""
        if kernels.ENABLED and scores.ndim == 1 and scores.dtype == np.float64 and len(scores):
            rank, top, n_top = kernels.dense_measure(
                scores, target, _NO_ROWS if exclude is None else exclude,
                self._scratch(len(scores)), self.k)
            if n_top >= 0:
                return int(rank), top[:n_top]
        return int(rank_of(scores, target, exclude)), top_k(scores, self.k, exclude)

    def measure_candidates(self, rows: np.ndarray, values: np.ndarray, target: int,
                           exclude: np.ndarray | None, dense: Callable[[], np.ndarray],
                           n_items: int, floor: Callable[[], np.ndarray] | None = None,
                           *, exact_rank: bool = True) -> tuple[int, np.ndarray]:
        """:meth:`measure` of ``dense()`` from its few rows that outrank all the others.

        ``rows`` (ascending) and ``values`` are the candidates' entries of ``dense()``, and
        every other row of ``dense()`` scores below every candidate; the dense scores are
        built only when the target is not a candidate or fewer than ``k`` candidates are
        left after ``exclude``. Same result as ``measure(dense(), target, exclude)``.
        ``floor()``, when given, returns ``dense()`` outside the candidate rows (any values
        on them): the compiled path ranks a non-candidate target from it without building
        ``dense()`` (:func:`learning.rank_kernels.measure`). ``exact_rank=False`` lets the
        compiled path return ``1 + eligible candidates`` for a target that is not an eligible
        candidate when at least ``k`` are (its rank is then beyond ``k`` whatever the other
        rows score, so :meth:`record` gives the same hit, gain and figures).

        >>> dense = np.array([0.5, 3.0, 0.2, 2.0, 4.0])
        >>> rows, values = np.array([1, 3, 4]), dense[[1, 3, 4]]
        >>> m = RankingPrequential(k=2)
        >>> rank, top = m.measure_candidates(rows, values, 3, np.array([4]), lambda: dense, 5)
        >>> (rank, top.tolist()) == (2, [1, 3]) == (lambda r, t: (int(r), t.tolist()))(
        ...     *m.measure(dense, 3, np.array([4])))
        True
        """
        if kernels.ENABLED and self.k <= len(rows):
            given = _NO_VALUES  # the floor, only for an exact rank of a non-candidate target
            if exact_rank and floor is not None:  # (without: the kernel bounds that rank)
                found = np.searchsorted(rows, target)
                if found >= len(rows) or rows[found] != target:
                    given = floor()
            rank, top, status = kernels.measure(
                rows, values, target, _NO_ROWS if exclude is None else exclude,
                self._scratch(n_items), self.k, given, not exact_rank)
            if status == 3:
                return int(rank), top
        if exclude is not None and len(exclude):
            mask = self._scratch(n_items)
            mask[exclude] = True  # zero again below: no pass over every item
            keep = ~mask[rows]
            mask[exclude] = False
            eligible, vals = rows[keep], values[keep]
        else:
            eligible, vals = rows, values
        at = int(np.searchsorted(eligible, target))
        full: np.ndarray | None = None
        if at < len(eligible) and eligible[at] == target:
            rank = int(rank_of(vals, at))
        else:
            full = dense()
            rank = int(rank_of(full, target, exclude))
        if len(eligible) >= self.k:  # best first, ties to the higher row, as top_k
            top = _best_first(eligible, vals, self.k)
        else:
            top = top_k(dense() if full is None else full, self.k, exclude)
        return rank, top

    def float_scratch(self, n_items: int) -> np.ndarray:
        """A persistent all-zero float array of at least ``n_items`` rows (callers re-zero it)."""
        zeros = self.__dict__.get("_zeros")
        if zeros is None or len(zeros) < n_items:
            size = max(n_items, 0 if zeros is None else 2 * len(zeros))
            zeros = self._zeros = np.zeros(size)
        return zeros

    def __getstate__(self) -> dict[str, object]:
        """The figures only: the scratch arrays are rebuilt on use."""
        return {key: value for key, value in self.__dict__.items()
                if key not in ("_mask", "_zeros")}

    def _scratch(self, n_items: int) -> np.ndarray:
        """A persistent all-False bool array of at least ``n_items`` rows."""
        mask = self.__dict__.get("_mask")
        if mask is None or len(mask) < n_items:
            size = max(n_items, 0 if mask is None else 2 * len(mask))
            mask = self._mask = np.zeros(size, dtype=bool)
        return mask

    def record(self, rank: int, top: np.ndarray, n_items: int, *,
               item_vectors: np.ndarray | None = None, popularity: np.ndarray | None = None,
               popularity_total: float | None = None) -> RankOutcome:
        """Add a :meth:`measure` result to the figures (``n_items``: the scores' length).

        Two metrics fed the same scores can share one :meth:`measure`.
        """
        hit = rank <= self.k
        gain = 1.0 / math.log2(rank + 1) if hit else 0.0
        self._n += 1
        self._hits += hit
        self._ndcg += gain
        if n_items > self._n_items:
            self._n_items = n_items
            self._covered = grow(self._covered, n_items)
        self._covered[top] = True
        if item_vectors is not None and len(top) > 1:
            self._div_sum += _diversity(item_vectors[top])
            self._div_n += 1
        if popularity is not None and len(top):
            total = float(popularity[:n_items].sum()) if popularity_total is None else (
                popularity_total)
            share = popularity[top] / total if total > 0 else np.ones(len(top))
            np.log2(np.maximum(share, 1e-300, out=share), out=share)  # in place: one array
            # -(sum of logs) is the sum of the negated logs bit for bit (rounding is symmetric)
            self._nov_sum += -float(np.add.reduce(share)) / len(share)  # == mean(-log2 share)
            self._nov_n += 1
        outcome = RankOutcome(rank, hit, gain, tuple(top.tolist()))
        self._recent.append((hit, gain, outcome.top))
        return outcome

    def score(self) -> RankingScore:
        """The figures so far as an immutable value (NaN before the first ranked event)."""
        n, recent = self._n, self._recent
        nan = math.nan
        covered_recent = {i for _, _, top in recent for i in top}
        return RankingScore(
            n=n, k=self.k,
            hr=self._hits / n if n else nan,
            ndcg=self._ndcg / n if n else nan,
            coverage=(int(self._covered.sum()) / self._n_items) if self._n_items else nan,
            intra_list_diversity=self._div_sum / self._div_n if self._div_n else None,
            novelty=self._nov_sum / self._nov_n if self._nov_n else nan,
            rolling_hr=sum(h for h, _, _ in recent) / len(recent) if recent else nan,
            rolling_ndcg=sum(g for _, g, _ in recent) / len(recent) if recent else nan,
            rolling_coverage=(len(covered_recent) / self._n_items) if recent else nan,
        )

