"""Stable canary routing: the same user always lands on the same side.

A user is in the canary when a hash of the user id, read as a fraction in ``[0, 1)``, is
below the share. The hash is BLAKE2b, not Python's ``hash``, so every process and restart
agrees, and raising the share only adds users to the canary.

>>> in_canary("u1", 0.0), in_canary("u1", 1.0)
(False, True)
>>> sum(in_canary(f"u{i}", 0.1) for i in range(10_000))
986
"""

from __future__ import annotations

import hashlib

__all__ = ["bucket", "in_canary"]


def bucket(user: str) -> float:
    """The user's fixed position in ``[0, 1)``."""
    digest = hashlib.blake2b(user.encode(), digest_size=8, person=b"lifelong-canary").digest()
    return int.from_bytes(digest, "big") / 2**64


def in_canary(user: str, share: float) -> bool:
    """Whether ``user`` belongs to a canary that takes ``share`` of users."""
    return bucket(user) < share
