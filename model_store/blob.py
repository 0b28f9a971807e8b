"""Blobs as chunks: split for writing, streamed and verified for reading.

>>> [bytes(c) for c in split(b"abcde", 2)]
[b'ab', b'cd', b'e']
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from model_store.backend import VersionStore
from model_store.errors import IntegrityError
from model_store.records import ModelVersion

__all__ = ["split", "stream"]

_READ_BATCH_BYTES = 16 * 2**20


def split(blob: bytes | bytearray | memoryview, chunk_size: int) -> Iterator[bytes]:
    """Yield ``chunk_size`` slices of ``blob`` (zero-copy views of a memoryview)."""
    view = memoryview(blob).cast("B")
    for start in range(0, len(view), chunk_size):
        yield view[start:start + chunk_size]  # type: ignore[misc]


def stream(store: VersionStore, version: ModelVersion) -> Iterator[bytes]:
    """Yield the version's chunks in order, fetched about 16 MiB at a time.

    After the last chunk, raises :class:`~model_store.errors.IntegrityError` if the size or
    sha256 differ from the metadata, or at once if a chunk is missing.
    """
    model, number = version.model, version.number
    hasher, size = hashlib.sha256(), 0
    step = max(1, _READ_BATCH_BYTES // max(1, version.chunk_size))
    for start in range(0, version.chunks, step):
        indices = range(start, min(version.chunks, start + step))
        for index, chunk in zip(indices, store.read_chunks(model, number, indices), strict=True):
            if chunk is None:
                raise IntegrityError(f'model "{model}" version {number}: chunk {index} of '
                                     f"{version.chunks} is missing")
            hasher.update(chunk)
            size += len(chunk)
            yield chunk
    if size != version.size or hasher.hexdigest() != version.sha256:
        raise IntegrityError(f'model "{model}" version {number}: sha256 mismatch '
                             "(the blob was altered), refusing it")
