"""The one home of model formats: a table ``format -> (dump, load)`` and verified decoding.

Every blob in the store has a ``format`` (how to read its bytes) and, in its metadata, a
``format_version`` (what the writer's code looked like; absent = 0, the releases before
the table). :func:`decode` checks the bytes against the version's sha256 and signature
first, then hands them to the format's loader. :meth:`Registry.load
<model_store.registry.Registry.load>` and the subscriber's default loader both go through
it, so a deep model is loaded in one place.

The table is filled in by the modules that define the formats. ``river-pickle`` (a pickled
model, signed because unpickling runs code) is built in: its loader maps classes that moved
since the version's ``format_version`` (a learning module lists them in ``MOVED``) so old
blobs still load after a module moves. ``safetensors`` comes from :mod:`learning.weights`,
which lists its ``(dump, load)`` pair in ``CODECS``: :data:`PROVIDERS` names the module
that defines each format, and the module is imported (registering its ``CODECS`` and
``MOVED``) the first time the format is needed, so the store imports torch only for deep
models. Unknown formats decode to their bytes.

>>> from model_store.signing import Signer
>>> signer = Signer(b"0123456789abcdef-test-key")
>>> data = dump({"w": [1.0, 2.0]})
>>> v = describe("reco", 1, data, signer)
>>> load(data, v, signer)
{'w': [1.0, 2.0]}
>>> decode(v, data + b"x", signer)
Traceback (most recent call last):
...
model_store.errors.IntegrityError: model "reco" version 1: sha256 mismatch, refusing to load it
>>> register("upper", lambda s: s.upper().encode(), lambda b: b.decode())
>>> decode(describe("reco", 2, b"HI", None, format="upper"), b"HI", None)
'HI'
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from model_store.errors import FormatError, IntegrityError
from model_store.records import ModelVersion
from model_store.signing import Signer, check_signature

__all__ = ["DELTA_FORMAT", "PICKLE_FORMAT", "PICKLE_VERSION", "PROVIDERS", "SAFETENSORS_FORMAT",
           "Codec",
           "codec_for", "decode", "describe", "dump", "encode", "format_version", "load",
           "register"]

PICKLE_FORMAT = "river-pickle"
SAFETENSORS_FORMAT = "safetensors"
#: a version made of its parent plus changed rows (model_store.delta; docs/publishing.md)
DELTA_FORMAT = "river-delta"
#: The ``format_version`` this code writes for pickles (0: releases before the codec table).
PICKLE_VERSION = 1
#: format -> the module that defines it (imported, registering its ``CODECS``, on first use)
PROVIDERS: dict[str, str] = {SAFETENSORS_FORMAT: "learning.weights",
                             DELTA_FORMAT: "model_store.delta",
                             "deep-ranking": "learning.rank_deep"}
#: modules whose ``MOVED`` maps old pickle class paths to where the classes live now
PICKLE_PROVIDERS: tuple[str, ...] = ("learning.serving",)


@dataclass(frozen=True)
class Codec:
    """How one format is written and read; ``load(data, format_version)`` for old writers."""

    name: str
    dump: Callable[[Any], bytes]
    load: Callable[[bytes, int], Any]
    signed: bool = False


_TABLE: dict[str, Codec] = {}
_MOVED: dict[tuple[str, str], tuple[int, str, str]] = {}
_lock = threading.Lock()


def register(name: str, dump: Callable[[Any], bytes], load: Callable[..., Any], *,
             signed: bool = False, versioned: bool = False) -> None:
    """Put ``name -> (dump, load)`` in the table (``versioned``: load takes the version too)."""
    loader = load if versioned else (lambda data, _version, _load=load: _load(data))
    with _lock:
        _TABLE[name] = Codec(name, dump, loader, signed)


def _import_providers(modules: tuple[str, ...]) -> None:
    for module in modules:
        mod = importlib.import_module(module)
        for name, pair in getattr(mod, "CODECS", {}).items():
            if name not in _TABLE:
                register(name, *pair)
        for old, (since, new_module, new_name) in getattr(mod, "MOVED", {}).items():
            _MOVED.setdefault(old, (since, new_module, new_name))


def codec_for(name: str) -> Codec | None:
    """The codec of format ``name`` (importing the module that defines it), or ``None``."""
    if name not in _TABLE and name in PROVIDERS:
        _import_providers((PROVIDERS[name],))
    return _TABLE.get(name)


def format_version(version: ModelVersion) -> int:
    """The writer's format version recorded with ``version`` (0 when absent)."""
    value = version.extra.get("format_version", 0)
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


def encode(name: str, obj: Any) -> bytes:
    """``obj`` in format ``name``."""
    found = codec_for(name)
    if found is None:
        raise FormatError(f'no codec for format "{name}"')
    return found.dump(obj)


def _verify(data: bytes, version: ModelVersion, signer: Signer | None, require: bool) -> None:
    what = f'model "{version.model}" version {version.number}'
    if len(data) != version.size or hashlib.sha256(data).hexdigest() != version.sha256:
        raise IntegrityError(f"{what}: sha256 mismatch, refusing to load it")
    check_signature(version, signer, require=require)


def decode(version: ModelVersion, data: bytes, signer: Signer | None, *,
           require_signatures: bool = False) -> Any:
    """The object ``data`` holds, once its sha256 and signature verify; bytes if unknown.

    Raises :class:`~model_store.errors.IntegrityError` (or ``UnsignedModelError``) instead
    of reading unverified bytes; a signed format is never read unsigned.
    """
    found = codec_for(version.format)
    _verify(data, version, signer, require_signatures or (found is not None and found.signed))
    if found is None:
        return data
    return found.load(data, format_version(version))


class _Unpickler(pickle.Unpickler):
    """Resolves classes that moved after the blob's format version to their new home."""

    def __init__(self, data: bytes, written: int):
        super().__init__(io.BytesIO(data))
        self.written = written

    def find_class(self, module: str, name: str) -> Any:
        moved = _MOVED.get((module, name))
        if moved is not None and self.written < moved[0]:
            module, name = moved[1], moved[2]
        return super().find_class(module, name)


def dump(obj: Any) -> bytes:
    """Pickle ``obj`` (protocol 5) for publishing as ``river-pickle``."""
    return pickle.dumps(obj, protocol=5)


def _load_pickle(data: bytes, written: int) -> Any:
    if written < PICKLE_VERSION:
        _import_providers(PICKLE_PROVIDERS)
    obj = _Unpickler(data, written).load()  # only ever called on verified bytes
    upgrade = getattr(obj, "__upgrade__", None)
    return upgrade() if callable(upgrade) else obj


def load(data: bytes, version: ModelVersion, signer: Signer | None) -> Any:
    """Unpickle ``data`` once its sha256 matches ``version`` and its signature verifies."""
    _verify(data, version, signer, True)
    return _load_pickle(data, format_version(version))


def describe(model: str, number: int, data: bytes, signer: Signer | None, *,
             format: str = PICKLE_FORMAT, extra: Mapping[str, Any] | None = None
             ) -> ModelVersion:
    """A minimal :class:`ModelVersion` for ``data`` (used by examples and tests)."""
    digest = hashlib.sha256(data).hexdigest()
    version = ModelVersion(model=model, number=number, format=format, sha256=digest,
                           size=len(data), created=0.0,
                           extra=dict(extra or {"format_version": PICKLE_VERSION}))
    if signer is None:
        return version
    return msgspec.structs.replace(version, signature=signer.sign_version(version))


register(PICKLE_FORMAT, dump, _load_pickle, signed=True, versioned=True)
