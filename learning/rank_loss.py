"""Ranking losses of the fine-tuner: sampled softmax and BPR over in-batch and popular negatives.

For ``task=ranking`` every sample is a positive ``(user row, item row)`` with a weight (the
task's weight of its event type). One minibatch step of :func:`ranking_step` scores each
positive against negatives of two kinds:

* **in-batch**: the other positives' items of the minibatch (drawn by popularity, since a
  round is fresh plus replayed interactions);
* **popularity-sampled**: ``n_negatives`` rows drawn uniformly from ``pool``, the item rows of
  the whole round, i.e. in proportion to how often each item occurs in it.

``softmax`` is a sampled softmax: each positive's logit against every candidate of the
batch (the ``B`` positives and the ``n_negatives`` shared negatives); a candidate that is
the positive's own item elsewhere in the batch is masked (not a negative).
``bpr`` is the pairwise loss ``softplus(s_neg - s_pos)`` against ``n_negatives`` sampled
negatives per positive plus one in-batch negative (the next positive's item). Both add
``weight_decay`` times the mean squared norm of the rows used (touched rows only).
A sample with a negative weight is a hard negative (see :func:`ranking_step`).
Scores are ``b_i + <user_repr(p_u), item_repr(q_i)>`` (the user and global biases do not
change a user's ranking). Vectorised; no host sync inside (the loss stays on the device).

>>> import torch
>>> from learning.torch_models import TorchMF
>>> from learning.finetune import make_optimizers
>>> m = TorchMF(4, 6, n_factors=4, seed=0)
>>> opts = make_optimizers(m, "sparse_adam", 0.05)
>>> u, i = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3])
>>> w, gen = torch.ones(4), torch.Generator().manual_seed(0)
>>> first = float(ranking_step(m, opts, u, i, w, i, loss="softmax", n_negatives=2, gen=gen))
>>> for _ in range(50):
...     last = float(ranking_step(m, opts, u, i, w, i, loss="softmax", n_negatives=2, gen=gen))
>>> last < first
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from learning.torch_models import EmbeddingModel

__all__ = ["LOSSES", "RANKING_LOSSES", "ranking_step"]

#: ``mse`` regresses the value (rating task); the others rank (ranking task).
LOSSES: tuple[str, ...] = ("mse", "softmax", "bpr")
RANKING_LOSSES: tuple[str, ...] = ("softmax", "bpr")


# Both losses compute the positives ``lo:hi`` of the minibatch only (under DDP a rank's share;
# the whole batch otherwise), against the whole batch's candidates, with the L2 terms scaled
# to that share, so the ranks' objectives add up to the one-process objective.
def _softmax(module: EmbeddingModel, users: Tensor, items: Tensor, negatives: Tensor,
             sparse: bool, log_q: Tensor | None, lo: int, hi: int,
             hard: Tensor | None) -> tuple[Tensor, Tensor]:
    b = items.shape[0]
    u = F.embedding(users[lo:hi], module.user_table, sparse=sparse)
    rows = torch.cat([items, negatives])
    c = F.embedding(rows, module.item_table, sparse=sparse)
    logits = (module.user_repr(u[:, :-1]) @ module.item_repr(c[:, :-1]).T).float()
    logits = logits + c[:, -1].float()
    if log_q is not None:  # logQ correction: candidates come by popularity, not uniformly
        logits = logits - log_q[rows]
    diag = torch.arange(lo, hi, device=items.device)
    same = rows[None, :] == items[lo:hi, None]
    same[diag - lo, diag] = False
    logits = logits.masked_fill(same, float("-inf"))
    per = F.cross_entropy(logits, diag, reduction="none")
    if hard is not None:  # hard negatives: -log(1 - p_own) = lse(all) - lse(all but own)
        own = torch.zeros_like(same)
        own[diag - lo, diag] = True
        rest = torch.logsumexp(logits.masked_fill(own, -1e4), dim=1)  # finite: no NaN grads
        away = torch.logsumexp(logits, dim=1) - rest
        per = torch.where(hard[lo:hi], away, per)
    l2 = (u.square().sum() + c.square().sum(-1).mean() * (hi - lo)) / b
    return per, l2


def _bpr(module: EmbeddingModel, users: Tensor, items: Tensor, negatives: Tensor,
         sparse: bool, lo: int, hi: int, hard: Tensor | None) -> tuple[Tensor, Tensor]:
    b = items.shape[0]
    negs = torch.cat([negatives.view(b, -1), items.roll(1)[:, None]], dim=1)[lo:hi]  # (n+1)
    mine = items[lo:hi]
    u = F.embedding(users[lo:hi], module.user_table, sparse=sparse)
    i = F.embedding(mine, module.item_table, sparse=sparse)
    j = F.embedding(negs, module.item_table, sparse=sparse)
    eu = module.user_repr(u[:, :-1])
    pos = (eu * module.item_repr(i[:, :-1])).sum(-1).float() + i[:, -1].float()
    neg = (eu[:, None, :] * module.item_repr(j[..., :-1])).sum(-1).float() + j[..., -1].float()
    valid = (negs != mine[:, None]).float()
    diff = neg - pos[:, None]
    if hard is not None:  # a hard negative ranks below the sampled items: reversed pairs
        diff = torch.where(hard[lo:hi, None], -diff, diff)
    pair = F.softplus(diff) * valid
    per = pair.sum(1) / valid.sum(1).clamp(min=1.0)
    l2 = (u.square().sum() + i.square().sum() + j.square().sum() / negs.shape[1]) / b
    return per, l2


def ranking_step(module: EmbeddingModel, optimizers: Sequence[torch.optim.Optimizer],
                 users: Tensor, items: Tensor, weights: Tensor, pool: Tensor, *,
                 loss: str = "softmax", n_negatives: int = 64, weight_decay: float = 0.0,
                 sparse: bool = True, amp: bool = False,
                 gen: torch.Generator | None = None, log_q: Tensor | None = None,
                 part: tuple[int, int] | None = None,
                 reduce: Callable[[], None] | None = None,
                 has_hard: bool | None = None) -> Tensor:
    """One minibatch step of ``loss``; returns the (detached) weighted loss sum.

    Data-parallel (``torchrun``): every rank passes the same global minibatch and generator
    state, ``part`` its rows ``(lo, hi)`` and ``reduce`` the gradients' sum over the ranks
    (:meth:`learning.distributed.Group.all_reduce_grads`). Each rank scores its positives
    against the whole batch's candidates and scales its objective to its share, so the
    summed gradient, and so every rank's step, is the one process's on the whole batch.

    ``weights`` are the positives' weights; a row with a negative weight ``-w`` is a **hard
    negative** (an item the user was shown and did not take, from the impression join),
    weighted ``w``: with ``softmax`` its loss is ``-log(1 - p)``, ``p`` the softmax share of
    its item among the same candidates; with ``bpr`` the pairs are reversed,
    ``softplus(s_item - s_neg)``, so the item ranks below the sampled ones (``has_hard``:
    whether any row may be one; None looks, at the cost of a host sync). ``pool`` is the
    item rows popular negatives are drawn from (the round's positives), ``gen`` the
    seeded generator on the pool's device. ``log_q`` (softmax only; per item row, the log
    of its share of the pool) subtracts each
    candidate's sampling log-probability from its logit (Yi et al. 2019), so the model
    learns the full softmax, popularity included, instead of popularity-free scores.
    """
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    b = items.shape[0]
    lo, hi = (0, b) if part is None else part
    if has_hard is None:
        has_hard = bool((weights < 0).any())  # a host sync: callers that know, say so
    hard = weights < 0 if has_hard else None  # hard negatives (shown, not taken): weight -w
    count = n_negatives if loss == "softmax" else n_negatives * b
    if count:
        draw = torch.randint(pool.shape[0], (count,), device=pool.device, generator=gen)
        negatives = pool[draw]
    else:
        negatives = items[:0] if loss == "softmax" else items.new_zeros((b, 0)).view(-1)
    with torch.autocast(users.device.type, dtype=torch.bfloat16, enabled=amp):
        if loss == "softmax":
            per, l2 = _softmax(module, users, items, negatives, sparse, log_q, lo, hi, hard)
        elif loss == "bpr":
            per, l2 = _bpr(module, users, items, negatives, sparse, lo, hi, hard)
        else:
            raise ValueError(f'unknown ranking loss "{loss}"; expected softmax or bpr')
    w = weights.float().abs()
    total = (w[lo:hi] * per).sum()
    objective = total / w.sum().clamp(min=1e-9) + weight_decay * l2.float()
    objective.backward()
    if reduce is not None:
        reduce()
    for opt in optimizers:
        opt.step()
    return total.detach()
