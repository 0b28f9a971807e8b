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
``mse`` loss, ``sparse_adam``, no AMP, no process group, on the CPU, and only with compiled
kernels (:mod:`learning.jit`; ``LIFELONG_NUMBA=0`` keeps the torch path). It applies from the
first round: until a torch path needs the optimizers (:meth:`FineTuner.__getattr__`; building
one imports ``torch._dynamo``, about 2 CPU-s), the tuner holds the state they would hold
(``step``, ``exp_avg``, ``exp_avg_sq``: made as their first step makes them) and hands it to
them when they are built.

>>> import numpy as np
>>> from learning.finetune import FineTuner
>>> from learning.torch_models import DeepRecommender
>>> ft = FineTuner(DeepRecommender(n_factors=4, seed=0), device="cpu", batch_size=2)
>>> applies(ft) == ENABLED
True
>>> _ = ft.round(["u1", "u2"], ["i1", "i1"], [4.0, 2.0], [1.0, 2.0])
>>> applies(ft) == ENABLED, ("_opts" in vars(ft)) == (not ENABLED)  # no torch optimizer
(True, True)
>>> [type(o).__name__ for o in ft._opts]  # built on first use, with the rounds' state
['RowAdam', 'Adam']
>>> int(ft._opts[0].state[ft.recommender.module.user_table]["step"])
1
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.optim.optimizer import _get_scalar_dtype

from learning.jit import ENABLED, jit

if TYPE_CHECKING:
    from learning.finetune import FineTuner

__all__ = ["ENABLED", "applies", "train"]


def _hyper(cls: type) -> tuple[tuple[float, float], float]:
    """The ``betas`` and ``eps`` a :mod:`torch.optim` class is built with by default."""
    params = inspect.signature(cls).parameters
    return params["betas"].default, params["eps"].default


def _optimizers(tuner: FineTuner) -> tuple[dict[str, Any], dict[str, Any],
                                            dict[Tensor, dict[str, Any]],
                                            dict[Tensor, dict[str, Any]]] | None:
    """The tables' and the bias's hyperparameters and state dicts, or None (torch path).

    Before the tuner built its optimizers (:meth:`FineTuner.__getattr__`), those
    :func:`~learning.finetune.make_optimizers` would build, with the state kept in the tuner.
    """
    from learning.finetune import _TABLES
    from learning.row_adam import RowAdam

    module = tuner.recommender.module
    tables = [module.user_table, module.item_table]
    opts = tuner.__dict__.get("_opts")
    if opts is None:
        dense = [p for name, p in module.named_parameters() if name not in _TABLES]
        if dense != [module.global_bias]:
            return None
        (b1, b2), eps = _hyper(RowAdam)
        (d1, d2), eps_b = _hyper(torch.optim.Adam)
        pending = tuner._pending
        return ({"lr": tuner.lr, "betas": (b1, b2), "eps": eps},
                {"lr": tuner.lr, "betas": (d1, d2), "eps": eps_b},
                pending.setdefault(0, {}), pending.setdefault(1, {}))
    if len(opts) != 2:
        return None
    rows, dense_opt = opts
    if type(rows) is not RowAdam or type(dense_opt) is not torch.optim.Adam:
        return None
    if [p for g in dense_opt.param_groups for p in g["params"]] != [module.global_bias]:
        return None
    if [p for g in rows.param_groups for p in g["params"]] != tables:
        return None
    g = dense_opt.param_groups[0]
    if (g["weight_decay"] or g["amsgrad"] or g["maximize"] or g.get("decoupled_weight_decay")
            or g.get("capturable") or g.get("fused") or isinstance(g["lr"], Tensor)
            or rows.param_groups[0].get("maximize", False)):
        return None
    return rows.param_groups[0], g, rows.state, dense_opt.state


def applies(tuner: FineTuner) -> bool:
    """Whether :func:`train` can run ``tuner``'s next round (else: the torch path)."""
    from learning.torch_models import TorchMF

    module = tuner.recommender.module
    if not (ENABLED and tuner.compiled_rounds and type(module) is TorchMF
            and tuner.loss == "mse" and tuner.group is None and not tuner.amp
            and tuner.device.type == "cpu" and tuner.optimizer == "sparse_adam"):
        return False
    got = _optimizers(tuner)
    if got is None:
        return False
    tables = (module.user_table, module.item_table)
    row_states, bias_states = got[2], got[3]
    state = bias_states.get(module.global_bias)
    moments = [*tables, module.global_bias]
    if state:
        moments += [state["exp_avg"], state["exp_avg_sq"]]
    for t in tables:  # no state yet: train() makes it as the optimizers' first step would
        if row_states.get(t):
            if row_states[t]["exp_avg"].shape != t.shape:
                return False
            moments += [row_states[t]["exp_avg"], row_states[t]["exp_avg_sq"]]
    return all(x.dtype == torch.float32 and x.is_contiguous() for x in moments)


def _first_state(tuner: FineTuner) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any],
                                              dict[str, Any], dict[str, Any]]:
    """The hyperparameters and the three state dicts, made where empty (as torch makes them)."""
    module = tuner.recommender.module
    got = _optimizers(tuner)
    assert got is not None
    row_group, bias_group, row_states, bias_states = got
    out = []
    for t in (module.user_table, module.item_table):
        if not row_states.get(t):  # RowAdam / SparseAdam: an int step, zero moments
            row_states[t] = {"step": 0, "exp_avg": torch.zeros_like(t),
                             "exp_avg_sq": torch.zeros_like(t)}
        out.append(row_states[t])
    bias = module.global_bias
    if not bias_states.get(bias):  # torch.optim.Adam on the CPU: a float tensor step
        bias_states[bias] = {"step": torch.tensor(0.0, dtype=_get_scalar_dtype()),
                             "exp_avg": torch.zeros_like(bias),
                             "exp_avg_sq": torch.zeros_like(bias)}
    return row_group, bias_group, out[0], out[1], bias_states[bias]


def train(tuner: FineTuner, users: Tensor, items: Tensor, values: Tensor, n: int,
          epochs: int) -> Tensor:
    """The round :meth:`FineTuner._train` would train (after its generator is seeded)."""
    module, bs = tuner.recommender.module, tuner.batch_size
    perms = torch.stack([torch.randperm(n, device=tuner.device, generator=tuner._gen)
                         for _ in range(epochs)]).numpy()
    rg, g, su, si, sb = _first_state(tuner)
    tables = (module.user_table, module.item_table)
    b1, b2 = rg["betas"]
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
                      float(tuner.weight_decay), float(rg["lr"]), b1, b2,
                      float(rg["eps"]), float(g["lr"]), d1, d2,
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
