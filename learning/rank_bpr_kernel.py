"""A compiled (numba) BPR step: :meth:`~learning.rank_bpr.BPR.learn_one`'s update in one call.

:func:`step` does in place, over plain arrays, what the numpy reference path of
:meth:`BPR.learn_one <learning.rank_bpr.BPR.learn_one>` does with ~15 numpy calls and two
``np.add.at``: for the positive ``item`` and the sampled negatives ``negs`` (the item
itself already removed), ``x_j = p . (q_i - q_j) + b_i - b_j``, ``g_j = w * sigmoid(-x_j)``,
then one SGD step on the user row, the positive's row and bias and every negative's row and
bias (a negative drawn twice is updated twice, from the same pre-step values, as
``np.add.at`` does). The negatives are still drawn by the model's numpy generator, so both
paths consume the same random numbers. The dot products are summed left to right rather
than by BLAS and numba's ``exp`` may differ in the last bit, so the two paths agree to
~1e-15 relative per step, not bit for bit (tests/unit/learning/test_rank_bpr_kernel.py).

``LIFELONG_NUMBA=0`` (or no numba) leaves :data:`step` as ``None``: BPR runs numpy.

>>> import numpy as np
>>> users, items, bias = np.zeros((1, 2)) + 0.1, np.eye(3, 2), np.zeros(3)
>>> step_py(users, items, bias, 0, 0, np.array([1, 2]), 1.0, 0.1, 0.0, True)
>>> bool(items[0] @ users[0] + bias[0] > items[1] @ users[0] + bias[1])
True
"""

from __future__ import annotations

import numpy as np

from learning.jit import ENABLED, jit

__all__ = ["ENABLED", "step", "step_py"]


def step_py(users: np.ndarray, items: np.ndarray, bias: np.ndarray, u: int, item: int,
            negs: np.ndarray, weight: float, lr: float, reg: float, item_bias: bool) -> None:
    """One BPR step of user row ``u`` on ``item`` against ``negs`` (in place; module doc)."""
    nf = users.shape[1]
    nn = len(negs)
    p = users[u].copy()
    qi = items[item].copy()
    qj = np.empty((nn, nf))
    bj = np.empty(nn)
    g = np.empty(nn)
    bi = bias[item]
    for j in range(nn):
        x = 0.0
        for f in range(nf):
            qj[j, f] = items[negs[j], f]
            x += (qi[f] - qj[j, f]) * p[f]
        bj[j] = bias[negs[j]]
        if item_bias:
            x += bi - bj[j]
        x = min(max(x, -35.0), 35.0)
        g[j] = weight / (1.0 + np.exp(x))
    gsum = 0.0
    for j in range(nn):
        gsum += g[j]
    for f in range(nf):
        d = 0.0
        for j in range(nn):
            d += g[j] * (qi[f] - qj[j, f])
        users[u, f] += lr * (d - reg * p[f])
        items[item, f] += lr * (gsum * p[f] - reg * qi[f])
    for j in range(nn):
        for f in range(nf):
            items[negs[j], f] += -lr * (g[j] * p[f] + reg * qj[j, f])
    if item_bias:
        bias[item] += lr * (gsum - reg * bi)
        for j in range(nn):
            bias[negs[j]] += -lr * (g[j] + reg * bj[j])


#: the compiled :func:`step_py`, or None (numpy path)
step = jit(step_py) if ENABLED else None
