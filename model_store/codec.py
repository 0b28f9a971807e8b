"""Turn Python objects into ``river-pickle`` blobs and back, refusing unverified bytes.

:func:`dump` pickles; :func:`load` unpickles only after the bytes match the version's
sha256 and its signature verifies (see :mod:`model_store.signing`), because unpickling
runs code. Torch weights do not come here: they travel as ``safetensors`` bytes.

>>> from model_store.signing import Signer
>>> signer = Signer(b"0123456789abcdef-test-key")
>>> data = dump({"w": [1.0, 2.0]})
>>> v = describe("reco", 1, data, signer)
>>> load(data, v, signer)
{'w': [1.0, 2.0]}
>>> load(data + b"x", v, signer)
Traceback (most recent call last):
...
model_store.errors.IntegrityError: model "reco" version 1: sha256 mismatch, refusing to load it
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import msgspec

from model_store.errors import IntegrityError
from model_store.records import ModelVersion
from model_store.signing import Signer, check_signature

__all__ = ["PICKLE_FORMAT", "SAFETENSORS_FORMAT", "describe", "dump", "load"]

PICKLE_FORMAT = "river-pickle"
SAFETENSORS_FORMAT = "safetensors"


def dump(obj: Any) -> bytes:
    """Pickle ``obj`` (protocol 5) for publishing as ``river-pickle``."""
    return pickle.dumps(obj, protocol=5)


def load(data: bytes, version: ModelVersion, signer: Signer | None) -> Any:
    """Unpickle ``data`` once its sha256 matches ``version`` and its signature verifies.

    Raises :class:`~model_store.errors.IntegrityError` (or its subclass
    ``UnsignedModelError``) instead of running unverified bytes.
    """
    what = f'model "{version.model}" version {version.number}'
    if len(data) != version.size or hashlib.sha256(data).hexdigest() != version.sha256:
        raise IntegrityError(f"{what}: sha256 mismatch, refusing to load it")
    check_signature(version, signer, require=True)
    return pickle.loads(data)  # verified above


def describe(model: str, number: int, data: bytes, signer: Signer | None) -> ModelVersion:
    """A minimal :class:`ModelVersion` for ``data`` (used by examples and tests)."""
    digest = hashlib.sha256(data).hexdigest()
    version = ModelVersion(model=model, number=number, format=PICKLE_FORMAT, sha256=digest,
                           size=len(data), created=0.0)
    if signer is None:
        return version
    return msgspec.structs.replace(version, signature=signer.sign_version(version))
