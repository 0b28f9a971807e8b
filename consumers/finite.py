"""Is a learner fit to publish? Its scores and every learned number must be finite.

One poisoned update (a huge rating, an overflow) can turn a matrix-factorisation model
into NaNs; clipping NaN gives NaN, so the served predictions would all be NaN. The
publisher asks :func:`non_finite` before it signs and stores anything: a model with a NaN or
an infinity is refused and the last good version keeps serving.

The walk visits the object's attributes, mappings, sequences, numpy arrays and torch
tensors (vectorised ``isfinite``), once per publish, never per event.

>>> import numpy as np
>>> class M:
...     def __init__(self): self.w = {"u1": np.ones(3)}; self.bias = 0.5
>>> m = M()
>>> non_finite(m) is None
True
>>> m.w["u2"] = np.array([1.0, float("nan")])
>>> non_finite(m)
".w['u2']"
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["SERVED_PARTS", "learner_non_finite", "non_finite"]

# What a learner serves from: River's model, the lifelong learner's online part, deep view
# and fold-in, blend weights. Trainer bookkeeping (e.g. -inf "never seen" times) is left out.
SERVED_PARTS = ("model", "online", "_serving", "weights")
_SKIP = (str, bytes, bytearray, int, bool, type(None), random.Random, type)


def non_finite(obj: Any, *, max_nodes: int = 50_000_000) -> str | None:
    """The path of the first NaN or infinity inside ``obj``, or ``None`` if all are finite.

    ``max_nodes`` bounds the walk (a huge model is still walked in full below it).
    """
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", obj)]
    visited = 0
    while stack and visited < max_nodes:
        path, x = stack.pop()
        visited += 1
        if isinstance(x, float):
            if not math.isfinite(x):
                return path or "."
            continue
        if isinstance(x, _SKIP) or (callable(x) and not hasattr(x, "__dict__")):
            continue
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, np.ndarray):
            if x.dtype.kind in "fc" and not np.isfinite(x).all():
                return path or "."
            if x.dtype.kind != "O":
                continue
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(x.ravel()))
            continue
        if isinstance(x, np.generic):
            if x.dtype.kind in "fc" and not np.isfinite(x):
                return path or "."
            continue
        if type(x).__module__.startswith("torch") and hasattr(x, "isfinite"):
            if x.is_floating_point() and not bool(x.detach().isfinite().all()):
                return path or "."
            continue
        if isinstance(x, Mapping):
            if not _floats_finite(x.values()):  # fast path; else walk for the path
                stack.extend((f"{path}[{k!r}]", v) for k, v in x.items())
        elif isinstance(x, list | tuple | deque | set | frozenset):
            if not _floats_finite(x):
                stack.extend((f"{path}[{i}]", v) for i, v in enumerate(x))
        else:
            state = getattr(x, "__dict__", None)
            if isinstance(state, dict):
                stack.extend((f"{path}.{k}", v) for k, v in state.items())
            slots = getattr(type(x), "__slots__", ())
            for name in (slots,) if isinstance(slots, str) else slots:
                if hasattr(x, name):
                    stack.append((f"{path}.{name}", getattr(x, name)))
    return None


def _floats_finite(values: Any) -> bool:
    """Whether ``values`` are all plain floats and all finite (one vectorised check)."""
    values = values if isinstance(values, list | tuple) else list(values)
    if not values or any(type(v) is not float for v in values):
        return False
    return bool(np.isfinite(np.fromiter(values, dtype=np.float64, count=len(values))).all())


def learner_non_finite(learner: Any) -> str | None:
    """Why ``learner`` must not be published (a non-finite score or parameter), or ``None``.

    >>> from learning.online import OnlineLearner
    >>> from stream.schema import Event
    >>> learner = OnlineLearner("BiasedMF")
    >>> _ = learner.learn_one(Event("e1", "u1", "i1", "rating", 4.0, 0.0))
    >>> learner_non_finite(learner) is None
    True
    >>> _ = learner.learn_one(Event("e2", "u1", "i1", "rating", 1e308, 0.0))
    >>> _ = learner.learn_one(Event("e3", "u1", "i1", "rating", 4.0, 0.0))
    >>> learner_non_finite(learner)
    'score rmse is inf'
    """
    score = learner.score()
    for name in ("rmse", "mae", "rolling_rmse", "rolling_mae"):
        value = getattr(score, name, 0.0)
        if score.n and not math.isfinite(value):
            return f"score {name} is {value}"
    for part in SERVED_PARTS:
        if hasattr(learner, part):
            where = non_finite(getattr(learner, part))
            if where is not None:
                return f"parameter {part}{'' if where == '.' else where} is not finite"
    return None
