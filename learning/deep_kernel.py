"""The deep side of one lifelong event: predict with the user's fold-in, then fold it in.

:func:`deep_side` is the part of :meth:`learning.serving.LifelongModel.step` that reads the
served :class:`~learning.blend.DeepView` and the :class:`~learning.foldin.UserVectors`:

    p_deep = clip(mu + b_i + b_u + <p_u + c_u, q_i>),   c_u <- (1 - lr l2) c_u + lr (y - p_deep) q_i

(unknown ids contribute nothing; the correction ``c_u`` learns only on items the view
knows). In numpy that is about ten small calls a event (row views, an addition, a dot
product, two in-place updates, scalar conversions); with numba it is one compiled call over
the view's packed arrays (:func:`kernel`, few arguments: a compiled call costs
about 0.1-0.2 us per argument). The floating-point operations are the numpy code's in
the same order, except the dot product, which the kernel sums left to right where numpy's
BLAS may pair terms: the two paths agree to ~1e-15, not bit for bit (tested).

``LIFELONG_NUMBA=0`` in the environment (read at import) runs the numpy path; so does a
missing numba. The kernel is compiled on first use and cached on disk (``cache=True``).

>>> import numpy as np
>>> from learning.blend import DeepView
>>> from learning.foldin import UserVectors
>>> view = DeepView(3.0, {"u": 0}, {"i": 0}, np.ones((1, 2)), np.zeros(1), np.ones((1, 2)),
...                 np.full(1, 0.5), (1.0, 5.0))
>>> vecs = UserVectors(lr=0.1, l2=0.0)
>>> deep_side(view, vecs, "u", "i", 4.5, 1.0, 5.0)  # 3 + 0.5 + 0 + <(1, 1), (1, 1)>
5.0
>>> vecs._vecs["u"].round(2).tolist()  # folded in: 0.1 * (4.5 - 5.0) * q_i
[-0.05, -0.05]
"""

from __future__ import annotations

import logging

import numpy as np

from learning.blend import DeepView
from learning.foldin import UserVectors
from learning.jit import ENABLED, jit

__all__ = ["ENABLED", "deep_side", "deep_side_numpy", "kernel", "kernel_params"]

log = logging.getLogger(__name__)

def _kernel_py(users, items, params, row, col, vec, value):  # type: ignore[no-untyped-def]
    """``p_deep`` of user row ``row`` (-1: unknown) and item row ``col``; folds ``vec`` in.

    ``users``/``items``: the view's packs (vectors, then the bias); ``params``: ``(mu, lr,
    1 - lr l2, lo, hi)`` (few arguments: a compiled call costs per argument).
    """
    d = items.shape[1] - 1
    mu, lr, decay, lo, hi = params[0], params[1], params[2], params[3], params[4]
    p = mu + items[col, d]
    s = 0.0
    if row >= 0:
        for j in range(d):
            s += (users[row, j] + vec[j]) * items[col, j]
    else:
        for j in range(d):
            s += vec[j] * items[col, j]
    p += s
    if row >= 0:
        p += users[row, d]
    p = lo if p < lo else hi if p > hi else p
    if lr != 0.0:
        rate = lr * (value - p)
        for j in range(d):
            vec[j] = vec[j] * decay + rate * items[col, j]
    return p


#: the compiled kernel, ``None`` on the numpy path (LifelongModel.step calls it inline)
kernel = jit(_kernel_py) if ENABLED else None


def kernel_params(view: DeepView, vecs: UserVectors, lo: float, hi: float) -> np.ndarray:
    """The kernel's constants ``(mu, lr, 1 - lr l2, lo, hi)`` (made once per deep model).

    Infinite bounds are stored as the largest finite floats (the same clip for any finite
    prediction), so a model that keeps these passes the publisher's finiteness check.
    """
    top = np.finfo(np.float64).max
    return np.array([view.mu, vecs.lr, 1.0 - vecs.lr * vecs.l2, max(lo, -top), min(hi, top)],
                    dtype=np.float64)


def deep_side(view: DeepView, vecs: UserVectors, user: str, item: str, value: float,
              lo: float, hi: float, params: np.ndarray | None = None) -> float:
    """``p_deep`` (clipped to ``[lo, hi]``) before learning ``value``; then the fold-in step.

    The user's correction is re-inserted after it learns (recency order of ``vecs``).
    ``params``: :func:`kernel_params` of the same arguments, when the caller keeps them.
    """
    if kernel is None:
        return deep_side_numpy(view, vecs, user, item, value, lo, hi)
    col, row = view.items.get(item), view.users.get(user)
    if col is None:  # nothing to fold in: the view's terms only
        p = view.mu
        if row is not None:
            p += float(view.user_bias[row])
        return lo if p < lo else hi if p > hi else p
    lr, table = vecs.lr, vecs._vecs
    vec = table.pop(user, None) if lr else table.get(user)
    if vec is None:
        vec = np.zeros(view.dim)
    if params is None:
        params = kernel_params(view, vecs, lo, hi)
    p = kernel(view.user_pack, view.item_pack, params, -1 if row is None else row, col, vec,
                value)
    if lr:
        table[user] = vec
        if len(table) > vecs.max_users:
            del table[next(iter(table))]
    return p


def deep_side_numpy(view: DeepView, vecs: UserVectors, user: str, item: str, value: float,
                    lo: float, hi: float) -> float:
    """:func:`deep_side` in numpy (the reference, and the path without numba)."""
    col, row = view.items.get(item), view.users.get(user)
    p = view.mu
    vec = q_i = None
    lr, table = vecs.lr, vecs._vecs
    if col is not None:
        p += view.item_bias[col]
        q_i = view.item_vecs[col]
        vec = table.pop(user, None) if lr else table.get(user)
        if row is not None:
            p += (view.user_vecs[row] + vec) @ q_i if vec is not None \
                else view.user_vecs[row] @ q_i
        elif vec is not None:
            p += vec @ q_i
    if row is not None:
        p += view.user_bias[row]
    p = float(p)
    p = lo if p < lo else hi if p > hi else p
    if q_i is not None and lr:
        rate = lr * (value - p)
        if vec is None:
            vec = rate * q_i
        else:
            vec *= 1.0 - lr * vecs.l2
            vec += rate * q_i
        table[user] = vec
        if len(table) > vecs.max_users:
            del table[next(iter(table))]
    return p
