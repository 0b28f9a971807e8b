"""The optimizer step split by row owner under ``torchrun`` (sparse table optimizers).

:func:`learning.distributed.row_step` with one dense ``all_reduce`` leaves every rank
holding the whole minibatch's gradient, and so every rank runs the same optimizer step on
every touched row: the step (the table rows' Adam update, the largest part of a CPU step
after the backward pass) is replicated ``world`` times. Here table row ``r`` belongs to rank
``r % world`` (it alone keeps that row's Adam moments) and the dense parameters to rank 0:

1. every rank knows the whole minibatch, hence its touched rows and their owners, with no
   exchange; after the backward pass of its piece it sends each owner the partial gradient
   of that owner's touched rows (one ``all_to_all_single``: a reduce-scatter with uneven
   pieces, which gloo's own ``reduce_scatter`` is slow at) and sums what it receives;
2. each rank steps its own rows (``RowAdam`` on a gradient holding only them) and rank 0 the
   dense parameters;
3. a second ``all_to_all_single`` sends every rank the updated rows (and rank 0's dense
   parameters), copied into place: every rank again holds the one process's weights.

The two exchanges carry what one ring ``all_reduce`` carries (each rank sends its share
of the touched rows twice). The moments are split: :meth:`learning.finetune.FineTuner.
snapshot` refuses under torchrun (nothing calls it there; rank 0 publishes weights only).

>>> owners(torch.tensor([0, 1, 2, 5, 6]), 2)
(tensor([0, 2, 6, 1, 5]), [3, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import Tensor

if TYPE_CHECKING:
    from learning.distributed import Group

__all__ = ["exchange_step", "owners"]


def owners(rows: Tensor, world: int) -> tuple[Tensor, list[int]]:
    """Positions of ``rows`` grouped by owner (``row % world``, stable) and each owner's count."""
    owner = rows % world
    order = torch.argsort(owner, stable=True)
    return order, torch.bincount(owner, minlength=world).tolist()


def exchange_step(tables: Sequence[Tensor], rows: Sequence[Tensor], subs: Sequence[Tensor],
                  dense: Sequence[Tensor], optimizers: Sequence[torch.optim.Optimizer],
                  group: Group) -> None:
    """Steps 1-3 above, given the gathered leaves ``subs`` (their ``.grad`` this rank's part).

    ``rows[k]`` are the sorted touched rows of ``tables[k]``, ``subs[k]`` their gathered
    values (a leaf whose gradient the backward pass filled).
    """
    world, rank = group.world, group.rank
    width = [t.shape[1] for t in tables]
    plan = [owners(r, world) for r in rows]
    grads = [torch.zeros_like(s) if s.grad is None else s.grad for s in subs]
    dense_grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in dense]
    n_dense = sum(p.numel() for p in dense)
    ordered = [g.index_select(0, order) for g, (order, _) in zip(grads, plan, strict=True)]
    # what owner d receives from every rank: its rows of each table, then (d == 0) dense
    sizes = [sum(c[d] * w for (_, c), w in zip(plan, width, strict=True))
             + (n_dense if d == 0 else 0) for d in range(world)]
    send: list[Tensor] = []
    starts = [0] * len(tables)
    for d in range(world):
        for k, (_, counts) in enumerate(plan):
            send.append(ordered[k][starts[k] : starts[k] + counts[d]].reshape(-1))
            starts[k] += counts[d]
        if d == 0:
            send.extend(g.reshape(-1) for g in dense_grads)
    flat = torch.cat(send)
    got = flat.new_empty(world * sizes[rank])
    dist.all_to_all_single(got, flat, [sizes[rank]] * world, sizes)
    mine = got.view(world, sizes[rank]).sum(0)
    at = 0  # my rows' summed gradients -> sparse grads holding only them
    offsets = [sum(c[:rank]) for _, c in plan]
    my_rows = []
    for k, (table, (order, counts)) in enumerate(zip(tables, plan, strict=True)):
        n = counts[rank] * width[k]
        idx = rows[k].index_select(0, order[offsets[k] : offsets[k] + counts[rank]])
        my_rows.append(idx)
        table.grad = torch.sparse_coo_tensor(idx.unsqueeze(0), mine[at : at + n].view(-1, width[k]),
                                             table.shape, is_coalesced=True,
                                             check_invariants=False)
        at += n
    for p in dense:
        p.grad = mine[at : at + p.numel()].view_as(p) if rank == 0 else None
        at += p.numel() if rank == 0 else 0
    for opt in optimizers:
        opt.step()
    # every rank: each owner's updated rows (and rank 0's dense parameters)
    with torch.no_grad():
        out = [t.index_select(0, i).reshape(-1) for t, i in zip(tables, my_rows, strict=True)]
        if rank == 0:
            out.extend(p.detach().reshape(-1) for p in dense)
        flat = torch.cat(out)
        back = flat.new_empty(sum(sizes))
        dist.all_to_all_single(back, flat.repeat(world), sizes, [sizes[rank]] * world)
        at = 0
        starts = [0] * len(tables)
        for s in range(world):
            for k, (table, (order, counts)) in enumerate(zip(tables, plan, strict=True)):
                n = counts[s] * width[k]
                if s != rank and n:
                    idx = rows[k].index_select(0, order[starts[k] : starts[k] + counts[s]])
                    table.index_copy_(0, idx, back[at : at + n].view(-1, width[k]))
                starts[k] += counts[s]
                at += n
            if s == 0:
                for p in dense:
                    if rank != 0:
                        p.copy_(back[at : at + p.numel()].view_as(p))
                    at += p.numel()
