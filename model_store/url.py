"""Choose a backend by URL scheme, as mlflow chooses its stores.

>>> type(open_backend("memory://")).__name__
'MemoryBackend'
>>> open_backend("s3://bucket")
Traceback (most recent call last):
...
model_store.errors.InvalidNameError: unsupported model store URL scheme 's3' (use redis://, \
rediss://, unix:// or memory://)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from model_store.backend import Backend
from model_store.errors import InvalidNameError
from model_store.memory_backend import MemoryBackend
from model_store.redis_backend import RedisBackend

__all__ = ["SCHEMES", "open_backend"]

SCHEMES = ("redis", "rediss", "unix", "memory")


def open_backend(url: str, *, prefix: str = "lifelong", **options: Any) -> Backend:
    """Open the backend for ``url``; ``options`` go to ``redis.Redis.from_url``.

    ``redis://[user:password@]host:port/db`` authenticates, ``rediss://`` adds TLS,
    ``unix:///path/redis.sock`` uses a socket, ``memory://`` is an empty in-process store.
    The error never repeats the URL, which may hold a password.
    """
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        return RedisBackend.from_url(url, prefix=prefix, **options)
    if scheme == "memory":
        return MemoryBackend()
    raise InvalidNameError(
        f"unsupported model store URL scheme {scheme!r} (use redis://, rediss://, unix:// or "
        "memory://)"
    )
