"""A fine-tune round of biased MF on the CPU in one compiled call (the rating rounds' fast path).

:meth:`learning.finetune.FineTuner._train` runs a round as ``epochs x minibatches`` calls of
:func:`learning.distributed.row_step`: about 30 torch operations and an autograd pass per
minibatch. For the small embeddings of ``lifelong evaluate --model lifelong`` (16 factors,
minibatches of 4,096, one CPU thread) that is dispatch and temporaries, not arithmetic: a
round of 5 epochs over 10k samples took 3-4 ms a minibatch. :func:`train` does the same
round in one numba call: the same minibatches of the same permutations (drawn by the
tuner's generator as before), the same gradients (squared error plus ``weight_decay`` times
the squared norm of the rows used, over the minibatch size), :class:`~learning.row_adam.RowAdam`
on the touched table rows and :class:`torch.optim.Adam` on the global bias, updating the
tables and the optimizers' state tensors in place (so snapshots, new-row padding and
erasure see what they saw). Only the rounding differs: sums run in float64 (torch sums
in float32 in another order), so weights agree to about 1e-6 (tested against the torch path).

It applies (:func:`applies`) to a :class:`~learning.torch_models.TorchMF` trained with the
``mse`` loss, ``sparse_adam``, no AMP, no process group, on the CPU, once the optimizers
hold their state (the first round of a tuner takes the torch path, which creates it), and
only with compiled kernels (:mod:`learning.jit`; ``LIFELONG_NUMBA=0`` keeps the torch path).

>>> import numpy as np
>>> from learning.finetune import FineTuner
>>> from learning.torch_models import DeepRecommender
>>> ft = FineTuner(DeepRecommender(n_factors=4, seed=0), device="cpu", batch_size=2)
>>> applies(ft)  # no optimizer state yet
False
>>> _ = ft.round(["u1", "u2"], ["i1", "i1"], [4.0, 2.0], [1.0, 2.0])
>>> applies(ft) == ENABLED
True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from learning.jit import ENABLED, jit

if TYPE_CHECKING:
    from learning.finetune import FineTuner

__all__ = ["ENABLED", "applies", "train"]


def applies(tuner: FineTuner) -> bool:
    """Whether :func:`train` can run ``tuner``'s next round (else: the torch path)."""
    from learning.row_adam import RowAdam
    from learning.torch_models import TorchMF

    module = tuner.recommender.module
    if not (ENABLED and tuner.compiled_rounds and type(module) is TorchMF
            and tuner.loss == "mse" and tuner.group is None and not tuner.amp
            and tuner.device.type == "cpu" and tuner.optimizer == "sparse_adam"
            and len(tuner._opts) == 2):
        return False
    rows, dense = tuner._opts
    if type(rows) is not RowAdam or type(dense) is not torch.optim.Adam:
        return False
    if [p for g in dense.param_groups for p in g["params"]] != [module.global_bias]:
        return False
    tables = (module.user_table, module.item_table)
    if [p for g in rows.param_groups for p in g["params"]] != list(tables):
        return False
    g = dense.param_groups[0]
    if (g["weight_decay"] or g["amsgrad"] or g["maximize"] or g.get("decoupled_weight_decay")
            or isinstance(g["lr"], Tensor) or rows.param_groups[0].get("maximize", False)):
        return False
    state = dense.state.get(module.global_bias, {})
    if not state or any(not rows.state.get(t) or rows.state[t]["exp_avg"].shape != t.shape
                        for t in tables):
        return False
    return all(x.dtype == torch.float32 and x.is_contiguous()
               for x in (*tables, module.global_bias, state["exp_avg"], state["exp_avg_sq"]))


def train(tuner: FineTuner, users: Tensor, items: Tensor, values: Tensor, n: int,
          epochs: int) -> Tensor:
    """The round :meth:`FineTuner._train` would train (after its generator is seeded)."""
    module, bs = tuner.recommender.module, tuner.batch_size
    perms = torch.stack([torch.randperm(n, device=tuner.device, generator=tuner._gen)
                         for _ in range(epochs)]).numpy()
    rows, dense = tuner._opts
    tables = (module.user_table, module.item_table)
    su, si = rows.state[tables[0]], rows.state[tables[1]]
    sb = dense.state[module.global_bias]
    b1, b2 = rows.param_groups[0]["betas"]
    g = dense.param_groups[0]
    d1, d2 = g["betas"]
    with torch.no_grad():
        arrays = [t.detach().numpy() for t in (*tables, su["exp_avg"], su["exp_avg_sq"],
                                                si["exp_avg"], si["exp_avg_sq"])]
        bias = [t.detach().view(1).numpy() for t in (module.global_bias, sb["exp_avg"],
                                                     sb["exp_avg_sq"])]
        steps = np.array([su["step"], si["step"], float(sb["step"])], dtype=np.float64)
        ut, it, um, uv, im, iv = arrays
        gb, bm, bv = bias
        sse = _epochs(ut, it, um, uv, im, iv, gb, bm, bv, users.numpy(), items.numpy(),
                      values.numpy(), perms, bs,
                      float(tuner.weight_decay), float(rows.param_groups[0]["lr"]), b1, b2,
                      float(rows.param_groups[0]["eps"]), float(g["lr"]), d1, d2,
                      float(g["eps"]), steps)
    done = epochs * math.ceil(n / bs)
    su["step"] += done
    si["step"] += done
    sb["step"] += done
    return torch.tensor(sse, dtype=torch.float32)


@jit
def _epochs(user_table, item_table, um, uv, im, iv, gb, bm, bv, users, items, values,  # type: ignore[no-untyped-def]
            perms, bs, wd, lr, b1, b2, eps, lr_b, d1, d2, eps_b, steps):  # pragma: no cover
    n_f = user_table.shape[1] - 1
    n = users.shape[0]
    gu = np.zeros(user_table.shape)
    gi = np.zeros(item_table.shape)
    seen_u = np.zeros(user_table.shape[0], dtype=np.bool_)
    seen_i = np.zeros(item_table.shape[0], dtype=np.bool_)
    touched_u = np.empty(user_table.shape[0], dtype=np.int64)
    touched_i = np.empty(item_table.shape[0], dtype=np.int64)
    sse = 0.0
    for e in range(perms.shape[0]):
        perm = perms[e]
        for s in range(0, n, bs):
            t = min(s + bs, n)
            c = 2.0 / (t - s)
            l2c = wd * c
            g_bias = 0.0
            nu = 0
            ni = 0
            for k in range(s, t):  # gradients of (sse + wd * sum of squared rows) / m
                j = perm[k]
                ru = users[j]
                ri = items[j]
                dot = 0.0
                for f in range(n_f):
                    dot += user_table[ru, f] * item_table[ri, f]
                err = float(gb[0]) + user_table[ru, n_f] + item_table[ri, n_f] + dot - values[j]
                sse += err * err
                d = c * err
                g_bias += d
                if not seen_u[ru]:
                    seen_u[ru] = True
                    touched_u[nu] = ru
                    nu += 1
                if not seen_i[ri]:
                    seen_i[ri] = True
                    touched_i[ni] = ri
                    ni += 1
                for f in range(n_f):
                    uf = user_table[ru, f]
                    vf = item_table[ri, f]
                    gu[ru, f] += d * vf + l2c * uf
                    gi[ri, f] += d * uf + l2c * vf
                gu[ru, n_f] += d + l2c * user_table[ru, n_f]
                gi[ri, n_f] += d + l2c * item_table[ri, n_f]
            for which in range(2):  # RowAdam on the touched rows of each table
                table, grad, m1, m2 = user_table, gu, um, uv
                seen, touched, count = seen_u, touched_u, nu
                if which == 1:
                    table, grad, m1, m2 = item_table, gi, im, iv
                    seen, touched, count = seen_i, touched_i, ni
                steps[which] += 1
                size = lr * math.sqrt(1 - b2 ** steps[which]) / (1 - b1 ** steps[which])
                for a in range(count):
                    r = touched[a]
                    seen[r] = False
                    for f in range(n_f + 1):
                        gr = grad[r, f]
                        grad[r, f] = 0.0
                        m = m1[r, f] + (1 - b1) * (gr - m1[r, f])
                        v = m2[r, f] + (1 - b2) * (gr * gr - m2[r, f])
                        m1[r, f] = m
                        m2[r, f] = v
                        table[r, f] -= size * m / (math.sqrt(v) + eps)
            steps[2] += 1  # Adam on the global bias
            m = bm[0] + (1 - d1) * (g_bias - bm[0])
            v = bv[0] * d2 + (1 - d2) * g_bias * g_bias
            bm[0] = m
            bv[0] = v
            corr2 = math.sqrt(1 - d2 ** steps[2])
            gb[0] -= lr_b / (1 - d1 ** steps[2]) * m / (math.sqrt(v) / corr2 + eps_b)
    return sse
