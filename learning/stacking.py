"""A blend that adapts per segment: ridge regression on the components, refit in batches.

The lifelong model has several predictions of one rating: the exact shrunk biases
(``p_bias``), River's online model, the deep model with its user fold-in, and the recent
residuals of the user and of the item (time-decayed biases: what the user and the item did
lately that the all-history biases have not caught up with). :class:`StackedBlend`
predicts

    p_bias + w_s . f,   f = (1, p_online - p_bias, p_deep - p_bias, e_user, e_item, ...)

with one coefficient vector ``w_s`` per segment ``s`` (the user's history length bucket,
0, 1, 2-3, 4-7, ... events, crossed with the item's: 0, 1-3, 4-15, 16 or more). The
coefficients are the ridge-regression solution over the events seen so far, exponentially
down-weighted with age (``halflife`` events), each segment shrunk towards the solution over
all segments (``ridge`` pseudo-events) and that one towards 0 (the biases alone).

Per event the cost is a dot product and an append to a buffer (the predictions made
*before* the event was learned, and its value); every ``refit_every`` events the buffer
becomes moment matrices (vectorised: one ``einsum``, one ``np.add.at``) and all segments
are solved at once (one batched ``np.linalg.solve``). So the weights that predict an event
were fit only on earlier events: prequential.

>>> blend = StackedBlend(n_features=2, refit_every=100, first_refit=100)
>>> for k in range(300):  # the target is the biases plus the first feature
...     f = (float(k % 7) - 3.0, float(k % 3))
...     _ = blend.predict(0, f)
...     blend.learn(0, f, f[0])
>>> [round(w, 2) + 0.0 for w in blend.coefficients(0)]
[0.0, 1.0, 0.0]
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["StackedBlend", "segment_of"]

ITEM_BUCKETS = 4


def segment_of(user_history: int, item_history: int, segments: int = 8) -> int:
    """The segment of a user with ``user_history`` and an item with ``item_history`` events.

    >>> [segment_of(n, 16) // 4 for n in (0, 1, 5, 10**6)], segment_of(0, 0), segment_of(0, 2)
    ([0, 1, 3, 7], 0, 1)
    """
    user = min(int(user_history).bit_length(), segments - 1)
    item = min((int(item_history).bit_length() + 1) // 2, ITEM_BUCKETS - 1)
    return user * ITEM_BUCKETS + item


class StackedBlend:
    """Per-segment ridge weights of ``n_features`` features plus an intercept (see module).

    Until the first refit (after ``first_refit`` events) every weight is 0 but
    ``initial`` (the weight of feature ``k`` for ``initial=(k, w)``).

    ``optional``: features (0-based) the blend may leave out where they do not pay. Each
    refit solves two sets of weights from the same moments, with all features and without
    the optional ones; the events queued since the previous refit are scored with both of
    that refit's sets (out of sample: they came after it), the squared errors summed with
    the same half-life, and the set with the lower sum serves until the next refit. No
    per-event cost: it is all done at refit time.
    """

    def __init__(self, n_features: int, *, segments: int = 8, refit_every: int = 1000,
                 first_refit: int = 200, halflife: float = 20_000.0, ridge: float = 100.0,
                 global_ridge: float = 10.0, initial: tuple[int, float] | None = None,
                 optional: tuple[int, ...] = ()):
        if n_features < 1 or segments < 1 or refit_every < 1 or first_refit < 1:
            raise ValueError("n_features, segments, refit_every, first_refit must be >= 1")
        if halflife <= 0 or ridge < 0 or global_ridge <= 0:
            raise ValueError("halflife and global_ridge must be > 0, ridge >= 0")
        if any(not 0 <= k < n_features for k in optional):
            raise ValueError(f"optional features must be in [0, {n_features})")
        self.n_features = n_features
        self.segments = segments
        self.refit_every = refit_every
        self.first_refit = first_refit
        self.halflife = halflife
        self.ridge = ridge
        self.global_ridge = global_ridge
        self.initial = initial
        self.n_segments = segments * ITEM_BUCKETS
        start = [0.0] * (n_features + 1)
        if initial is not None:
            start[initial[0] + 1] = initial[1]
        # per-event reads: plain lists of floats (numpy scalars are slow one at a time)
        self._coef = [list(start) for _ in range(self.n_segments)]
        width = n_features + 2  # intercept, features, target
        self._moments = np.zeros((self.n_segments, width, width))
        self._pending = array("d")  # segment, features, target per event, flat
        self._seen = 0
        self.refits = 0
        self.optional = tuple(optional)
        self._sets: np.ndarray | None = None  # (2, segments, 1 + F): all / without optional
        self._errors = np.zeros(2)  # their decayed squared errors on later events
        self.without_optional = False  # whether the set without them serves
        self._set_due()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # blobs before ``optional``: no features to leave out
        state.setdefault("optional", ())
        state.setdefault("_sets", None)
        state.setdefault("_errors", np.zeros(2))
        state.setdefault("without_optional", False)
        state.pop("_due", None)
        self.__dict__.update(state)
        self._set_due()

    def segment(self, user_history: int, item_history: int) -> int:
        """:func:`segment_of` with this blend's number of user buckets."""
        return segment_of(user_history, item_history, self.segments)

    def coefficients(self, segment: int) -> list[float]:
        """``[intercept, w_1 ... w_F]`` of ``segment`` as used now."""
        return list(self._coef[segment])

    def predict(self, segment: int, features: Sequence[float]) -> float:
        """The correction ``w_s . (1, features)`` to add to the base prediction."""
        w = self._coef[segment]
        out = w[0]
        for k, x in enumerate(features, 1):
            out += w[k] * x
        return out

    def learn(self, segment: int, features: Sequence[float], target: float) -> None:
        """Queue one event (``target``: value minus the base prediction); refit when due."""
        self.push((segment, *features, target))

    def push(self, row: tuple[float, ...]) -> None:
        """:meth:`learn` of ``(segment, *features, target)`` (one call on the per-event path)."""
        pending = self._pending
        pending.extend(row)
        self._seen += 1
        if len(pending) >= self._due:
            self.refit()

    def _set_due(self) -> None:
        # the pending length at which a refit is due (read per event: an attribute)
        self._due = (self.first_refit if not self.refits else self.refit_every) * (
            self.n_features + 2)

    def refit(self) -> None:
        """Fold the queued events into the moments and solve every segment (vectorised)."""
        width = self.n_features + 2
        rows = np.frombuffer(self._pending, dtype=np.float64).reshape(-1, width)
        if not rows.size:
            return
        n = rows.shape[0]
        z = np.empty((n, width))
        z[:, 0] = 1.0
        z[:, 1:] = rows[:, 1:]
        seg = rows[:, 0].astype(np.int64)
        # age weights within the batch, then the batch's age for what was there before
        ages = np.arange(n - 1, -1, -1, dtype=np.float64)
        wts = 0.5 ** (ages / self.halflife)
        decay = 0.5 ** (n / self.halflife)
        if self._sets is not None:  # the last refit's two sets, scored on the events since
            f = self.n_features + 1
            pred = np.einsum("kni,ni->kn", self._sets[:, seg, :], z[:, :f])
            self._errors = self._errors * decay + ((z[:, f] - pred) ** 2) @ wts
        self._moments *= decay
        # per segment sum_n w_n z_n z_n^T: the weighted outer products, rows ordered by
        # segment (stable), summed per run of a segment by np.add.reduceat (np.add.at is slow)
        order = np.argsort(seg, kind="stable")
        seg, zo = seg[order], z[order]
        outer = (zo * wts[order, None])[:, :, None] * zo[:, None, :]
        starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
        self._moments[seg[starts]] += np.add.reduceat(outer, starts, axis=0)
        self._pending = array("d")
        self._solve()

    def _solve(self) -> None:
        f = self.n_features + 1
        eye = np.eye(f)
        total = self._moments.sum(axis=0)
        w_all = np.linalg.solve(total[:f, :f] + self.global_ridge * eye, total[:f, f])
        a = self._moments[:, :f, :f] + self.ridge * eye
        b = self._moments[:, :f, f] + self.ridge * w_all
        coef = np.linalg.solve(a, b[..., None])[..., 0]
        if self.optional:
            keep = [k for k in range(f) if k - 1 not in self.optional]
            sub = np.zeros_like(coef)
            w_sub = np.linalg.solve(total[np.ix_(keep, keep)] + self.global_ridge * np.eye(
                len(keep)), total[keep, f])
            a_sub = self._moments[:, keep][:, :, keep] + self.ridge * np.eye(len(keep))
            b_sub = self._moments[:, keep, f] + self.ridge * w_sub
            sub[:, keep] = np.linalg.solve(a_sub, b_sub[..., None])[..., 0]
            self._sets = np.stack([coef, sub])
            self.without_optional = bool(self._errors[1] < self._errors[0])
            if self.without_optional:
                coef = sub
        self._coef = coef.tolist()
        self.refits += 1
        self._set_due()

    def add_feature(self) -> None:
        """Append a feature with weight 0 and no moments (blobs of a narrower layout load).

        Predictions stay those of the narrower blend until the next refit.

        >>> blend = StackedBlend(n_features=1)
        >>> blend.learn(0, (2.0,), 1.0)
        >>> blend.add_feature()
        >>> blend.n_features, blend.coefficients(0), len(blend._pending)
        (2, [0.0, 0.0, 0.0], 4)
        """
        f = self.n_features + 1  # the new feature's column in (1, features, target)
        self._coef = [[*c, 0.0] for c in self._coef]
        moments = np.zeros((self.n_segments, f + 2, f + 2))
        keep = [*range(f), f + 1]
        moments[np.ix_(range(self.n_segments), keep, keep)] = self._moments
        self._moments = moments
        rows = np.frombuffer(self._pending, dtype=np.float64).reshape(-1, f + 1)
        self._pending = array("d", np.insert(rows, f, 0.0, axis=1).ravel().tolist())
        if self._sets is not None:
            self._sets = np.insert(self._sets, f, 0.0, axis=2)
        self.n_features += 1
        self._set_due()

    def report(self) -> dict[str, Any]:
        """Coefficients per segment and the events each segment's moments weigh (JSON-ready)."""
        return {"coefficients": [list(c) for c in self._coef],
                "weight": self._moments[:, 0, 0].tolist(), "refits": self.refits,
                "without_optional": self.without_optional,
                "errors": self._errors.tolist()}
