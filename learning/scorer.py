"""What serving needs from a ranking model: the ``ItemScorer`` protocol.

Owned by the serving helper (issue 8); this copy carries the same protocol text from
RANKING_INTERFACE.md, made ruff clean, so the merge is trivial.

>>> import numpy as np
>>> class Two:
...     def item_ids(self): return ["a", "b"]
...     def score_items(self, user): return np.array([0.5, 1.0])
...     def seen_items(self, user): return np.empty(0, dtype=np.int64)
...     def item_vectors(self): return None
>>> isinstance(Two(), ItemScorer)
True
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
