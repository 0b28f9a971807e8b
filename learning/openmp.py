"""torch's OpenMP threads wait by sleeping, not spinning (set before torch is imported).

torch's CPU kernels run their intra-op threads on OpenMP (libgomp in the PyPI wheels), whose
idle threads spin for a while at every barrier before they sleep. On cores that other work
also uses (other processes, other fine-tuner ranks), a spinning thread burns the time
slice the thread it waits for needs: on this project's 2-core machine under a load of 9-11,
one fine-tuner process with torch's 2 threads (the default of ``lifelong finetune`` there,
:func:`learning.distributed.default_threads`) trained the same 4 rounds (MF, 32 factors,
batch 4,096) in 19.8 s and 7.6 CPU-s, with ``OMP_WAIT_POLICY=PASSIVE`` in 2.5 s and 0.94 CPU-s
(one thread: 1.7 s and 0.63 CPU-s). libgomp reads the variable once, when it is loaded
(``import torch``), so :func:`passive_wait` must run first; a value the user set is kept.

>>> env = {}
>>> passive_wait(env, torch_loaded=False), env
(True, {'OMP_WAIT_POLICY': 'PASSIVE'})
>>> passive_wait({"OMP_WAIT_POLICY": "ACTIVE"}, torch_loaded=False)
False
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping

__all__ = ["passive_wait"]

log = logging.getLogger(__name__)


def passive_wait(environ: MutableMapping[str, str] | None = None, *,
                 torch_loaded: bool | None = None) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless set; whether it was set (and can still apply).

    ``torch_loaded`` (default: whether ``torch`` is imported) makes it a no-op, with a log
    line, once libgomp has read its environment.
    """
    env = os.environ if environ is None else environ
    loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    if "OMP_WAIT_POLICY" in env:
        return False
    if loaded:
        log.debug("torch already imported: OMP_WAIT_POLICY=PASSIVE would not apply")
        return False
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
