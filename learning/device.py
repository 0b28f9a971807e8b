"""Device placement at the edge: pick a device, move host arrays there cheaply.

Host -> CUDA copies are only asynchronous from page-locked ("pinned") memory, so
:func:`to_device` pins the host tensor first when the target is CUDA and copies with
``non_blocking=True``; the copy is queued on the current stream and later kernels on that
stream are ordered after it, so no synchronisation is needed. On CPU nothing is pinned or
copied.

>>> dev = pick_device("cpu")
>>> dev
device(type='cpu')
>>> to_device(np.arange(3), dev).tolist()
[0, 1, 2]
"""

from __future__ import annotations

import numpy as np
import torch

from learning.errors import ConfigurationError

__all__ = ["amp_default", "pick_device", "pin", "to_device"]


def pick_device(prefer: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` as asked.

    >>> pick_device("auto").type in ("cpu", "cuda")
    True
    >>> pick_device("tpu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    learning.errors.ConfigurationError: unknown device "tpu"; use auto, cpu or cuda[:N]
    """
    if isinstance(prefer, torch.device):
        prefer = str(prefer)
    if prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if prefer == "cpu":
        return torch.device("cpu")
    if prefer == "cuda" or prefer.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigurationError(
                f'device "{prefer}" was asked for but CUDA is not available '
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})")
        dev = torch.device(prefer)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigurationError(
                f'device "{prefer}" does not exist; {torch.cuda.device_count()} CUDA devices')
        return dev
    raise ConfigurationError(f'unknown device "{prefer}"; use auto, cpu or cuda[:N]')


def amp_default(device: torch.device) -> bool:
    """Whether bf16 autocast is on by default: on CUDA yes, on CPU no."""
    return device.type == "cuda"


def pin(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Page-lock a host tensor when it is bound for CUDA (else return it unchanged)."""
    if device.type == "cuda" and tensor.device.type == "cpu" and not tensor.is_pinned():
        return tensor.pin_memory()
    return tensor


def to_device(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a host array to ``device``: pinned and ``non_blocking`` for CUDA, as is for CPU."""
    host = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) \
        else array
    if device.type == "cpu":
        return host
    return pin(host, device).to(device, non_blocking=True)
