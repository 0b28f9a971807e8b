"""What serving needs from a ranking model: the :class:`ItemScorer` protocol (issue 8).

The published ranking model implements it directly, so a subscriber only checks
``isinstance(obj, ItemScorer)``. Rows are append-only: an item gets the next row the first
time it is seen and keeps it.

>>> import numpy as np
>>> class Pop:
...     def item_ids(self): return ["a", "b"]
...     def score_items(self, user): return np.array([2.0, 1.0])
...     def seen_items(self, user): return np.array([], dtype=np.int64)
...     def item_vectors(self): return None
>>> isinstance(Pop(), ItemScorer), isinstance(object(), ItemScorer)
(True, False)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["ItemScorer"]


@runtime_checkable
class ItemScorer(Protocol):
    """What serving needs from a ranking model (published objects implement it)."""

    def item_ids(self) -> list[str]:
        """Known items in row order (append-only: a row never changes meaning)."""
        ...

    def score_items(self, user: str) -> np.ndarray:
        """float64 score per known item (len == len(item_ids())), higher is better.

        For an unknown (cold) user: the non-personal scores (decayed popularity).
        """
        ...

    def seen_items(self, user: str) -> np.ndarray:
        """int64 row indices of items the user already interacted with (empty if unknown)."""
        ...

    def item_vectors(self) -> np.ndarray | None:
        """(n_items, d) float item embeddings in row order, for MMR diversity; None if none."""
        ...
