"""Between rounds: fold every event into the deep model, and blend it with River per segment.

:class:`UserVectors` folds every event into the *user* side of a frozen
:class:`~learning.blend.DeepView` (a factor correction by SGD against the item's frozen
factors), so a user the deep model never saw gets a vector from their first events (their
bias comes from :class:`~learning.biases.BiasModel`). Dropped when a new deep version
arrives, which learned those events itself.

:class:`SegmentBlend` mixes River and the deep side with one MSE-optimal convex weight (as
:class:`~learning.blend.BlendWeights`) *per segment* of users by history length (0, 1,
2-3, 4-7, ... events) and items by theirs, plus each segment's recent mean residual: new
users are best served by other weights than heavy users, and often rate above or below the mean.

>>> blend = SegmentBlend(window=50, warmup=0)
>>> [blend.segment(n) // 4 for n in (0, 1, 5, 10**6)], blend.segment(0, 0), blend.segment(0, 2)
([0, 1, 3, 7], 0, 1)
>>> for _ in range(200):
...     blend.update(0, 5.0, 4.0, 3.0)  # new users (of new items) rate above both
>>> round(blend.blend(0, 4.0, 3.0), 2)
5.0
"""

from __future__ import annotations

import numpy as np

from learning.blend import BlendWeights, DeepView

__all__ = ["SegmentBlend", "UserVectors"]


class UserVectors:
    """Per-user factor corrections learned by SGD against a view's frozen item factors.

    At most ``max_users`` users are kept (the least recently updated go first). Dropped
    when a new deep version arrives, which learned those events itself.
    """

    def __init__(self, lr: float = 0.02, l2: float = 0.05, max_users: int = 1_000_000):
        if lr < 0 or l2 < 0 or max_users < 1:
            raise ValueError("lr and l2 must be >= 0 and max_users >= 1")
        self.lr = lr
        self.l2 = l2
        self.max_users = max_users
        self._vecs: dict[str, np.ndarray] = {}

    def interaction(self, view: DeepView, user: str, item: str) -> tuple[float, np.ndarray | None]:
        """``(<p_u + correction, q_i>, q_i)``; 0 and None for an item the view never saw."""
        _, q_i = view.item_terms(item)
        if q_i is None:
            return 0.0, None
        row = view.users.get(user)
        y = float(view.user_vecs[row] @ q_i) if row is not None else 0.0
        vec = self._vecs.get(user)
        if vec is not None:
            y += float(vec @ q_i)
        return y, q_i

    def update(self, view: DeepView, user: str, q_i: np.ndarray | None, err: float) -> None:
        """One SGD step for ``user`` on an item with factors ``q_i`` and error ``err``."""
        if q_i is None or self.lr == 0:
            return
        vec = self._vecs.pop(user, None)
        if vec is None:
            vec = (self.lr * err) * q_i
        else:  # the same step as vec + lr * (err * q_i - l2 * vec), without temporaries
            vec *= 1.0 - self.lr * self.l2
            vec += (self.lr * err) * q_i
        self._vecs[user] = vec  # re-inserted: recency
        if len(self._vecs) > self.max_users:
            del self._vecs[next(iter(self._vecs))]

    def __len__(self) -> int:
        return len(self._vecs)

    def __getstate__(self) -> dict:
        # one matrix instead of a pickled array per user: publishing pickles this often
        state = dict(self.__dict__)
        vecs = state.pop("_vecs")
        state["_users"] = list(vecs)
        state["_matrix"] = np.array(list(vecs.values())) if vecs else None
        return state

    def __setstate__(self, state: dict) -> None:
        if "_users" in state:
            users, matrix = state.pop("_users"), state.pop("_matrix")
            state["_vecs"] = dict(zip(users, matrix.copy(), strict=True)) if users else {}
        self.__dict__.update(state)


class SegmentBlend:
    """One MSE-optimal convex weight and one residual offset per segment of (user, item).

    A segment is the user's history length bucket (``2^(k-1) <= n < 2^k`` earlier events,
    0 for none, up to ``segments - 1``) crossed with the item's (0, 1-3, 4-15, 16 or more
    earlier events). Weights and offsets are moving averages over about ``window`` events
    of the segment; a segment with fewer than ``warmup`` events uses the weight and offset
    learned over all segments.
    """

    ITEM_BUCKETS = 4

    def __init__(self, window: int = 2000, segments: int = 8, offset_window: int = 2000,
                 warmup: int = 200):
        if segments < 1 or window < 1 or offset_window < 1 or warmup < 0:
            raise ValueError("window, offset_window and segments must be >= 1, warmup >= 0")
        self.warmup = warmup
        self.overall = BlendWeights(window=window)
        self.overall_offset = 0.0
        self.window = window
        self.segments = segments
        self.offset_window = offset_window
        k = segments * self.ITEM_BUCKETS
        self.weights = [BlendWeights(window=window) for _ in range(k)]
        # plain lists, not numpy arrays: per-event scalar math on numpy elements is slow
        self._offsets = [0.0] * k
        self._counts = [0] * k

    def __setstate__(self, state: dict) -> None:
        # blobs pickled before the lists kept ``offsets`` and ``_n`` as numpy arrays
        if "offsets" in state:
            state["_offsets"] = [float(x) for x in state.pop("offsets")]
            state["_counts"] = [int(x) for x in state.pop("_n")]
        self.__dict__.update(state)

    @property
    def offsets(self) -> np.ndarray:
        """Each segment's residual offset."""
        return np.array(self._offsets)

    def segment(self, history: int, item_history: int = 16) -> int:
        """The segment of a user with ``history`` and an item with ``item_history`` events."""
        user = min(int(history).bit_length(), self.segments - 1)
        item = min((int(item_history).bit_length() + 1) // 2, self.ITEM_BUCKETS - 1)
        return user * self.ITEM_BUCKETS + item

    def blend(self, segment: int, p_a: float, p_b: float) -> float:
        """The mixed prediction in ``segment``."""
        if self._counts[segment] < self.warmup:
            return self.overall.blend(p_a, p_b) + self.overall_offset
        return self.weights[segment].blend(p_a, p_b) + self._offsets[segment]

    def update(self, segment: int, y: float, p_a: float, p_b: float) -> None:
        """Fold one observation in (after :meth:`blend` was used for it)."""
        self.step(segment, y, p_a, p_b)

    def step(self, segment: int, y: float, p_a: float, p_b: float) -> float:
        """:meth:`blend` (before learning ``y``), then :meth:`update`, in one pass."""
        w = self.weights[segment]
        mixed = w.blend(p_a, p_b)
        overall_w = self.overall
        overall = overall_w.blend(p_a, p_b)
        n = self._counts[segment]
        out = overall + self.overall_offset if n < self.warmup else \
            mixed + self._offsets[segment]
        overall_w.update(y, p_a, p_b)
        if overall_w._n > self.window:
            self.overall_offset += (1.0 / self.window) * ((y - overall) - self.overall_offset)
        else:
            self.overall_offset += ((y - overall) - self.overall_offset) / overall_w._n
        w.update(y, p_a, p_b)
        n += 1
        self._counts[segment] = n
        alpha = max(1.0 / n, 1.0 / self.offset_window)
        self._offsets[segment] += alpha * ((y - mixed) - self._offsets[segment])
        return out
