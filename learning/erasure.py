"""Erasure in the pure core: remove one user's learned state so they become a cold user.

:class:`Forgettable` is the one verb: ``forget_user(user) -> int``, the number of entries
(rows, weights, samples) removed; ``0`` means the user was not known. River's
recommenders keep per-user dicts (``u_biases``, ``u_latents``) and user-side optimizers
(``u_bias_optimizer``, ``u_latent_optimizer``: stateful ones such as AdaGrad keep a
per-user entry too); its factorisation machine keeps the ``user_<id>`` feature's weight and
latent vector (and optimizer state under that key). :func:`forget_river_user` removes
exactly those; item-side state is left alone, so it still carries what the user taught it
(see docs/privacy.md).

>>> from learning.models import make_model
>>> rec = make_model("BiasedMF", seed=1)
>>> rec.learn_one("u1", "i1", 5.0)
>>> forget_river_user(rec._model, "u1"), forget_river_user(rec._model, "u1")
(2, 0)
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["Forgettable", "forget_river_user", "scrub_key"]

_MAX_DEPTH = 3


@runtime_checkable
class Forgettable(Protocol):
    """Anything that can drop one user's learned state."""

    def forget_user(self, user: str) -> int:
        """Remove ``user``; return how many entries went (``0``: unknown user)."""
        ...


def scrub_key(obj: Any, key: str, depth: int = _MAX_DEPTH) -> int:
    """Delete ``key`` from every mutable mapping reachable from ``obj`` (bounded depth).

    Only use with a key that cannot name anything else (a ``user_<id>`` feature, or a
    user id inside user-only state): item tables keyed by a colliding id would lose it too.

    River objects (optimizers) are walked through; other objects are not entered.

    >>> g2 = {"user_a": 1.0, "item_a": 2.0}
    >>> scrub_key({"state": {"g2": g2}, "user_a": 3}, "user_a"), g2
    (2, {'item_a': 2.0})
    """
    removed = 0
    if isinstance(obj, MutableMapping):
        if key in obj:
            del obj[key]
            removed += 1
        values = list(obj.values()) if depth > 0 else []
    elif depth > 0 and hasattr(obj, "__dict__") and not isinstance(obj, type):
        values = list(vars(obj).values())
    else:
        values = []
    for value in values:
        if isinstance(value, MutableMapping) or (
                hasattr(value, "__dict__") and type(value).__module__.startswith("river")):
            removed += scrub_key(value, key, depth - 1)
    return removed


def forget_river_user(model: Any, user: str) -> int:
    """Remove ``user`` from a River recommender or factorisation machine; return entries."""
    if hasattr(model, "weights") and hasattr(model, "latents"):  # facto.*: one-hot features
        return scrub_key(model, f"user_{user}")
    removed = 0
    for name, value in vars(model).items():
        if name.startswith("u_"):  # u_biases, u_latents, u_bias_optimizer, u_latent_optimizer
            removed += scrub_key(value, user, depth=2)
    return removed
