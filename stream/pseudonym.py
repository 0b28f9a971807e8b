"""Pseudonymous user ids: a keyed hash (HMAC-SHA256) of ``user_id``, applied at ingestion.

A pseudonym reads ``p1:<key id>:<32 hex>``: the scheme version, the id of the key that made
it (so a rotated key's pseudonyms are told apart) and the first 128 bits of
``HMAC-SHA256(key, user_id)``. The mapping is deterministic (the same key and id give the
same pseudonym in every process), so the learner, the fine-tuner and the serving SDK agree
without sharing any table; without the key it cannot be reversed or recomputed.

Already-pseudonymous ids (``p1:<this key id>:<32 hex>``) pass unchanged, so a producer and
a learner that both apply it do not hash twice.

The key comes from ``LIFELONG_PSEUDONYM_KEY`` (text, at least 16 bytes) or
``LIFELONG_PSEUDONYM_KEY_FILE``; ``LIFELONG_PSEUDONYM_KEY_ID`` names it (default: a short
fingerprint of the key). Keys retired by a rotation may be listed in
``LIFELONG_PSEUDONYM_OLD_KEY_FILES`` (``<key id>.key`` files separated by ``os.pathsep``):
they map nothing new but
let an erasure find a user's pseudonyms under every key (see docs/privacy.md).

>>> p = Pseudonymizer(b"0123456789abcdef-secret", key_id="k1")
>>> p("alice")
'p1:k1:e699d9e131ee56644bf34100e488ca33'
>>> p(p("alice")) == p("alice"), p("bob") != p("alice")
(True, True)
>>> Pseudonymizer.from_env({}) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path

import msgspec

from stream.schema import Event

__all__ = ["KEY_ENV", "KEY_FILE_ENV", "KEY_ID_ENV", "OLD_KEY_FILES_ENV", "PseudonymKeyError",
           "Pseudonymizer"]

KEY_ENV = "LIFELONG_PSEUDONYM_KEY"
KEY_FILE_ENV = "LIFELONG_PSEUDONYM_KEY_FILE"
KEY_ID_ENV = "LIFELONG_PSEUDONYM_KEY_ID"
OLD_KEY_FILES_ENV = "LIFELONG_PSEUDONYM_OLD_KEY_FILES"
MIN_KEY_BYTES = 16
_HEX = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class PseudonymKeyError(ValueError):
    """The pseudonym key is missing, too short or unreadable, or its id is malformed."""


def _fingerprint(key: bytes) -> str:
    return hmac.new(key, b"lifelong-pseudonym-key-id", hashlib.sha256).hexdigest()[:8]


class Pseudonymizer:
    """Map raw user ids to ``p1:<key id>:<hex>`` pseudonyms with ``key``.

    ``old_keys`` (key id -> key) are retired keys: :meth:`pseudonyms` also gives a user's
    pseudonyms under them, for erasure; :meth:`__call__` only ever uses ``key``.
    """

    def __init__(self, key: bytes, *, key_id: str | None = None,
                 old_keys: Mapping[str, bytes] | None = None):
        if len(key) < MIN_KEY_BYTES:
            raise PseudonymKeyError(f"the pseudonym key must be at least {MIN_KEY_BYTES} "
                                    f"bytes, got {len(key)}")
        self.key_id = _fingerprint(key) if key_id is None else key_id
        if not _KEY_ID.match(self.key_id):
            raise PseudonymKeyError(f"bad pseudonym key id {self.key_id!r}: 1-32 of "
                                    "A-Z a-z 0-9 _ -")
        self._key = key
        self._old = dict(old_keys or {})
        self._mine = re.compile(rf"^p1:{re.escape(self.key_id)}:[0-9a-f]{{{_HEX}}}$")

    def __call__(self, user_id: str) -> str:
        """The pseudonym of ``user_id`` (unchanged if it already is one of this key)."""
        if self._mine.match(user_id):
            return user_id
        return self._hash(self._key, self.key_id, user_id)

    @staticmethod
    def _hash(key: bytes, key_id: str, user_id: str) -> str:
        digest = hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"p1:{key_id}:{digest[:_HEX]}"

    def pseudonyms(self, user_id: str) -> list[str]:
        """Every pseudonym ``user_id`` may have: under the key, then each retired key.

        >>> p = Pseudonymizer(b"k" * 16, key_id="new", old_keys={"old": b"o" * 16})
        >>> [s.split(":")[1] for s in p.pseudonyms("alice")]
        ['new', 'old']
        """
        if self._mine.match(user_id):
            return [user_id]
        return [self(user_id)] + [self._hash(k, kid, user_id) for kid, k in self._old.items()]

    def apply(self, event: Event) -> Event:
        """``event`` with its ``user_id`` replaced by the pseudonym."""
        return msgspec.structs.replace(event, user_id=self(event.user_id))

    def __repr__(self) -> str:  # never the key
        return f"Pseudonymizer(key_id={self.key_id!r}, old={sorted(self._old)!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Pseudonymizer | None:
        """The configured pseudonymizer, or ``None`` when no key is set (pseudonyms off)."""
        env = os.environ if env is None else env
        key_id = env.get(KEY_ID_ENV) or None
        if env.get(KEY_ENV):
            key = env[KEY_ENV].encode("utf-8")
        elif env.get(KEY_FILE_ENV):
            key = _read_key(env[KEY_FILE_ENV])
        else:
            return None
        old = {}
        for path in filter(None, env.get(OLD_KEY_FILES_ENV, "").split(os.pathsep)):
            old[Path(path).stem] = _read_key(path)  # a retired key file is <key id>.key
        return cls(key, key_id=key_id, old_keys=old)


def _read_key(path: str) -> bytes:
    try:
        return Path(path).read_bytes().strip()
    except OSError as exc:
        raise PseudonymKeyError(f"cannot read the pseudonym key file {path}: {exc}") from exc
