"""The one numba switch of ``learning/``: compiled kernels when numba is there, numpy otherwise.

``LIFELONG_NUMBA=0`` in the environment (read at import) turns the compiled paths off, as
does a missing numba; every kernel keeps its numpy reference path, tested equal to it.
:func:`jit` is ``numba.njit(cache=True)``: a kernel is compiled on first use and cached on
disk (``__pycache__`` or numba's user-wide cache); when no cache directory is writable it is
compiled once per process instead (logged once). Without numba it returns the function.

>>> def twice(x):
...     return 2 * x
>>> jit(twice)(21)
42
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["ENABLED", "jit"]

log = logging.getLogger(__name__)

try:  # pragma: no cover - import guard
    import numba
except ImportError:  # pragma: no cover
    numba = None

#: whether the compiled paths are used (``LIFELONG_NUMBA=0``, or no numba: the numpy paths)
ENABLED = numba is not None and os.environ.get("LIFELONG_NUMBA", "1") != "0"
_warned = False
F = TypeVar("F", bound=Callable[..., Any])


def jit(func: F) -> F:
    """``numba.njit(cache=True)``, or without the disk cache when no directory is writable."""
    global _warned
    if numba is None:
        return func
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", numba.NumbaWarning)
            return numba.njit(cache=True)(func)  # type: ignore[no-any-return]
    except (RuntimeError, numba.NumbaWarning) as exc:  # pragma: no cover
        if not _warned:
            log.info("numba cache unavailable (%s): kernels compile per process", exc)
            _warned = True
        return numba.njit(cache=False)(func)  # type: ignore[no-any-return]
