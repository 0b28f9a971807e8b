"""HMAC-SHA256 signatures over a version's blob and metadata, with the key from the environment.

A pickled model is code: unpickling runs whatever the pickle says. So a ``river-pickle``
blob is loaded only when its signature verifies with the shared key. A signature
(``hmac-sha256-v2:<key id>:<hex>``, :meth:`Signer.sign_version`) covers everything a reader
acts on: model, number, format, sha256, size, created, parent, chunks, chunk size and the
``offsets``, ``metrics``, ``tags`` and ``extra`` maps (the learner's resume offsets, its
dedup window digest, ``events_seen``). Only ``announced`` (stamped by alias moves) is left
out. Versions signed before (``hmac-sha256:<key id>:<hex>``, format and sha256 only) still
load, with a warning, since their bytes are still bound; ``verify --require-signature``
refuses them. The key comes from ``LIFELONG_SIGNING_KEY`` (the text itself) or
from the file named by ``LIFELONG_SIGNING_KEY_FILE`` (its bytes, surrounding whitespace
stripped); it must be at least 16 bytes.

>>> signer = Signer(b"0123456789abcdef-test-key")
>>> v = ModelVersion(model="reco", number=1, format="river-pickle", sha256="ab" * 32, size=9,
...                  created=0.0, offsets={"events:0": 10})
>>> signed = msgspec.structs.replace(v, signature=signer.sign_version(v))
>>> signer.verify_version(signed)
True
>>> tampered = msgspec.structs.replace(signed, offsets={"events:0": 0})
>>> signer.verify_version(tampered)
False
>>> sig = signer.sign("river-pickle", "ab" * 32)  # the old (v1) scheme
>>> sig.startswith("hmac-sha256:" + signer.key_id + ":")
True
>>> signer.verify("river-pickle", "ab" * 32, sig), signer.verify("safetensors", "ab" * 32, sig)
(True, False)
>>> Signer.from_env({}) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from model_store.errors import IntegrityError, SigningKeyError, UnsignedModelError
from model_store.records import ModelVersion

__all__ = [
    "ENV_KEY",
    "ENV_KEY_FILE",
    "MIN_KEY_BYTES",
    "SIGNED_FIELDS",
    "SIGNED_FORMATS",
    "Signer",
    "check_signature",
    "is_legacy",
    "key_missing",
]

log = logging.getLogger(__name__)

ENV_KEY = "LIFELONG_SIGNING_KEY"
ENV_KEY_FILE = "LIFELONG_SIGNING_KEY_FILE"
MIN_KEY_BYTES = 16
SIGNED_FORMATS = frozenset({"river-pickle"})
_SCHEME = "hmac-sha256"  # v1: format and sha256 only
_SCHEME_V2 = "hmac-sha256-v2"  # v2: every field of SIGNED_FIELDS
SIGNED_FIELDS = ("model", "number", "format", "sha256", "size", "created", "parent", "chunks",
                 "chunk_size", "offsets", "metrics", "tags", "extra")
_WHERE = f"set {ENV_KEY} or {ENV_KEY_FILE}"


class Signer:
    """Signs and verifies blobs with one secret key.

    ``key_id`` is a short public fingerprint of the key, stored in each signature so an
    error can say that a blob was signed with another key.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise SigningKeyError(
                f"signing key is {len(key)} bytes, at least {MIN_KEY_BYTES} are needed"
            )
        self._key = bytes(key)
        self.key_id = hashlib.sha256(b"lifelong-key-id\0" + self._key).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"

    def sign(self, format: str, sha256: str) -> str:
        """Return the signature string for a blob of ``format`` with digest ``sha256``."""
        return f"{_SCHEME}:{self.key_id}:{self._mac(format, sha256)}"

    def verify(self, format: str, sha256: str, signature: str) -> bool:
        """Whether ``signature`` was made by this key for exactly this format and digest."""
        scheme, _, rest = signature.partition(":")
        _, _, mac = rest.partition(":")
        return scheme == _SCHEME and hmac.compare_digest(mac, self._mac(format, sha256))

    def sign_version(self, version: ModelVersion) -> str:
        """The v2 signature of ``version``: its blob digest and every field a reader acts on."""
        return f"{_SCHEME_V2}:{self.key_id}:{self._mac_version(version)}"

    def verify_version(self, version: ModelVersion) -> bool:
        """Whether ``version.signature`` is this key's, for exactly this version (v2 or v1)."""
        scheme, _, rest = version.signature.partition(":")
        _, _, mac = rest.partition(":")
        if scheme == _SCHEME_V2:
            return hmac.compare_digest(mac, self._mac_version(version))
        return self.verify(version.format, version.sha256, version.signature)

    def _mac_version(self, version: ModelVersion) -> str:
        fields = {name: getattr(version, name) for name in SIGNED_FIELDS}
        message = b"lifelong-model/2\0" + msgspec.json.encode(fields, order="sorted")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _mac(self, format: str, sha256: str) -> str:
        message = b"lifelong-model/1\0" + format.encode() + b"\0" + sha256.encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Signer | None:
        """Build from ``LIFELONG_SIGNING_KEY`` or ``LIFELONG_SIGNING_KEY_FILE``; ``None`` if unset.

        >>> len(Signer.from_env({ENV_KEY: "a-key-of-at-least-16-bytes"}).key_id)
        8
        """
        env = os.environ if environ is None else environ
        text, path = env.get(ENV_KEY, ""), env.get(ENV_KEY_FILE, "")
        if text and path:
            raise SigningKeyError(f"both {ENV_KEY} and {ENV_KEY_FILE} are set; set only one")
        if text:
            return cls(text.strip().encode())
        if path:
            try:
                return cls(Path(path).read_bytes().strip())
            except OSError as exc:
                raise SigningKeyError(f"{ENV_KEY_FILE}={path!r} cannot be read: {exc}") from exc
        return None


def is_legacy(signature: str) -> bool:
    """Whether ``signature`` uses the v1 scheme (format and sha256 only, no metadata).

    >>> is_legacy("hmac-sha256:ab12cd34:00"), is_legacy("hmac-sha256-v2:ab12cd34:00")
    (True, False)
    """
    return signature.partition(":")[0] == _SCHEME


def key_missing(action: str) -> SigningKeyError:
    """The error for an operation that needs a key when none is configured."""
    return SigningKeyError(f"{action} requires a signing key: {_WHERE}")


def check_signature(
    version: ModelVersion, signer: Signer | None, *, require: bool = False,
    legacy: bool = True,
) -> None:
    """Refuse ``version`` unless its signature is acceptable.

    A format in :data:`SIGNED_FORMATS` (or any format when ``require``) must carry a
    signature that ``signer`` verifies. Otherwise a signature is checked when both it and a
    signer exist, and ignored when there is no signer (sha256 still guards the bytes). A
    valid v1 signature (metadata not covered) passes with a warning, or is refused when
    ``legacy`` is False.

    >>> s = Signer(b"0123456789abcdef-test-key")
    >>> v = ModelVersion(model="reco", number=2, format="river-pickle", sha256="00",
    ...                  size=1, created=0.0)
    >>> check_signature(v, s)
    Traceback (most recent call last):
    ...
    model_store.errors.UnsignedModelError: model "reco" version 2 (format "river-pickle") \
is not signed; refusing to load it
    """
    what = f'model "{version.model}" version {version.number} (format "{version.format}")'
    must = require or version.format in SIGNED_FORMATS
    if not version.signature:
        if must:
            raise UnsignedModelError(f"{what} is not signed; refusing to load it")
        return
    if signer is None:
        if must:
            raise key_missing(f"verifying {what}")
        return
    if not signer.verify_version(version):
        parts = version.signature.split(":")
        key_id = parts[1] if len(parts) == 3 else "?"
        hint = f" (signed with key {key_id}, configured key is {signer.key_id})"
        if key_id == signer.key_id:
            hint = " (the blob or its metadata was altered)"
        raise IntegrityError(f"{what} has a bad signature{hint}; refusing to load it")
    if is_legacy(version.signature):
        if not legacy:
            raise IntegrityError(f"{what} is signed the old way (format and sha256 only, its "
                                 "metadata is not covered); refusing it")
        log.warning("%s is signed the old way: its blob is bound, its metadata (offsets...) "
                    "is not; republish it to cover both", what)
