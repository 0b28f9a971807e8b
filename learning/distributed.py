"""Data-parallel fine-tuning under ``torchrun``: the process group, what ranks exchange.

``torchrun --nproc_per_node N -m lifelong finetune ...`` starts N copies of the same command
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set.
:meth:`DistEnv.from_environ` reads them (``None`` when none is set: a plain process; a clear
error when only some are). :class:`Group` joins the process group with the backend of the
device (gloo on CPU, NCCL on CUDA, one GPU per ``LOCAL_RANK``) and carries the few exchanges
a round needs:

- rank 0 alone reads Kafka and, when a round is due, sends the round's fresh samples to the
  other ranks (:meth:`Group.send_round` / :meth:`Group.receive_round`, one
  ``broadcast_object_list``); every rank maps the same ids, so the id tables, table growth
  and re-drawn rows stay identical on every rank with no further exchange;
- each rank keeps its own shard of the replay buffer (fresh sample ``k`` goes to rank
  ``k % world``), draws its share of the replay, and :meth:`Group.all_gather_rows` joins the
  shares, so every rank holds the same round;
- each global minibatch is split into ``world`` contiguous pieces, one per rank
  (:func:`row_step`): every rank knows the whole minibatch, hence the table rows it touches
  (sorted ``torch.unique``, no exchange), computes the loss of its piece scaled by ``1 / m``
  and the gradients of the touched rows and of the dense parameters are summed in **one**
  dense ``all_reduce`` of one flat buffer a step: the one process's coalesced gradient.

Not ``DistributedDataParallel``: its reducer allreduces a sparse table gradient as
uncoalesced index/value lists (gloo only) with one collective per table, and the tables
travel whole when dense (NCCL); summing only the touched rows, known on every rank, costs
one dense collective of the touched rows a step on both backends. The ranking losses
(each rank scores its rows against all candidates) sum their gradients with
:meth:`Group.all_reduce_grads`.

>>> DistEnv.from_environ({}) is None
True
>>> env = DistEnv.from_environ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
...                             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"})
>>> env.rank, env.world_size, env.is_leader
(1, 2, False)
>>> DistEnv.from_environ({"RANK": "0", "WORLD_SIZE": "2"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
learning.errors.ConfigurationError: partial torchrun environment: ... missing LOCAL_RANK, ...
>>> backend_for(torch.device("cpu")), split_range(10, 3, 0), split_range(10, 3, 2)
('gloo', (0, 3), (6, 10))
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from learning.errors import ConfigurationError

if TYPE_CHECKING:
    from learning.torch_models import EmbeddingModel

__all__ = ["ENV_VARS", "DistEnv", "Group", "backend_for", "cpus_available",
           "default_threads", "set_threads", "split_range"]

log = logging.getLogger(__name__)

#: The variables ``torchrun`` sets for every worker; all or none must be present.
ENV_VARS: tuple[str, ...] = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def cpus_available() -> int:
    """The CPUs this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(environ: Mapping[str, str] | None = None, cpus: int | None = None) -> int:
    """Torch intra-op threads of one fine-tuner process: the CPUs shared by the local ranks.

    ``max(1, cpus // local_world_size)``, where ``LOCAL_WORLD_SIZE`` (set by ``torchrun``:
    the ranks on this machine) is 1 outside torchrun. N ranks each running torch's default
    (one thread per core) oversubscribe the cores N times; torchrun's own fallback
    (``OMP_NUM_THREADS=1``) leaves cores idle when there are more cores than ranks.

    >>> default_threads({}, cpus=8), default_threads({"LOCAL_WORLD_SIZE": "2"}, cpus=8)
    (8, 4)
    >>> default_threads({"LOCAL_WORLD_SIZE": "4"}, cpus=2)
    1
    """
    env = os.environ if environ is None else environ
    try:
        local = max(1, int(env.get("LOCAL_WORLD_SIZE", "1") or 1))
    except ValueError:
        raise ConfigurationError(f"bad LOCAL_WORLD_SIZE {env['LOCAL_WORLD_SIZE']!r}") from None
    return max(1, (cpus_available() if cpus is None else cpus) // local)


def set_threads(threads: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` (None/0: :func:`default_threads`)."""
    if threads is not None and threads < 0:
        raise ConfigurationError(f"threads must be >= 0, got {threads}")
    chosen = threads or default_threads(environ)
    torch.set_num_threads(chosen)
    log.info("torch uses %d intra-op thread(s) in this process", chosen)
    return chosen


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a ``torchrun`` job (see :data:`ENV_VARS`)."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int

    @property
    def is_leader(self) -> bool:
        """Rank 0: reads the stream, publishes and commits."""
        return self.rank == 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DistEnv | None:
        """The ``torchrun`` environment, ``None`` outside torchrun; raises when partial/bad."""
        env = os.environ if environ is None else environ
        present = [k for k in ENV_VARS if env.get(k, "") != ""]
        if not present:
            return None
        missing = [k for k in ENV_VARS if k not in present]
        if missing:
            raise ConfigurationError(
                f"partial torchrun environment: {', '.join(present)} set but missing "
                f"{', '.join(missing)}; start with `torchrun --nproc_per_node N -m lifelong "
                f"finetune ...` or unset them for one process")
        try:
            got = cls(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"]),
                      env["MASTER_ADDR"], int(env["MASTER_PORT"]))
        except ValueError as exc:
            raise ConfigurationError(f"bad torchrun environment: {exc}") from None
        if not 0 <= got.rank < got.world_size or got.local_rank < 0:
            raise ConfigurationError(f"bad torchrun environment: RANK {got.rank}, "
                                     f"WORLD_SIZE {got.world_size}, LOCAL_RANK {got.local_rank}")
        return got

    def device(self, prefer: str) -> str:
        """The device of this rank: ``cuda[:N]``/``auto`` with CUDA -> ``cuda:LOCAL_RANK``."""
        wants_cuda = prefer.startswith("cuda") or (prefer == "auto" and torch.cuda.is_available())
        return f"cuda:{self.local_rank}" if wants_cuda else prefer


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def split_range(m: int, world: int, rank: int) -> tuple[int, int]:
    """The ``[lo, hi)`` piece of ``m`` samples that ``rank`` trains (contiguous, balanced)."""
    return m * rank // world, m * (rank + 1) // world


def row_step(module: EmbeddingModel, optimizers: Sequence[torch.optim.Optimizer], users: Tensor,
             items: Tensor, values: Tensor, *, weight_decay: float, sparse: bool,
             amp: bool = False, group: Group | None = None) -> Tensor:
    """One optimisation step on the minibatch ``users/items/values``; its squared errors.

    The loss is the MSE plus ``weight_decay`` times the mean squared norm of the rows used
    (L2 on touched rows only, so rows of absent users do not decay between their visits).
    The step gathers the minibatch's distinct table rows (sorted ``torch.unique``) as a
    leaf, so the tables' gradient is born coalesced (one row per touched row) and has the
    size of the touched rows, not of the minibatch: ``RowAdam`` takes it as it is (sparse,
    ``sparse``) and dense optimizers get it scattered into a zero table.

    With ``group`` (under torchrun) every rank holds the whole global minibatch (the same
    round, the same permutation), so every rank knows the touched rows with no exchange;
    each computes the loss of its piece (:func:`split_range`), scaled by ``1 / m``, and
    the gradients of the touched rows and of the dense parameters travel in **one** dense
    ``all_reduce`` (sum) of one flat buffer: every rank then holds the whole minibatch's
    gradient and takes the one process's step. Returns this rank's piece's squared errors.
    """
    m = users.shape[0]
    lo, hi = (0, m) if group is None else split_range(m, group.world, group.rank)
    u_rows, u_at = torch.unique(users, return_inverse=True)
    i_rows, i_at = torch.unique(items, return_inverse=True)
    tables = (module.user_table, module.item_table)
    u_sub = tables[0].detach().index_select(0, u_rows).requires_grad_()
    i_sub = tables[1].detach().index_select(0, i_rows).requires_grad_()
    dense = [p for p in module.parameters() if p.requires_grad
             and all(p is not t for t in tables)]
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    with torch.autocast(users.device.type, dtype=torch.bfloat16, enabled=amp):
        pred, l2 = module.row_terms(u_sub.index_select(0, u_at[lo:hi]),
                                    i_sub.index_select(0, i_at[lo:hi]))
    sse = (pred.float() - values[lo:hi]).square().sum()
    ((sse + weight_decay * l2.float().sum()) / m).backward()
    subs = (u_sub, i_sub)
    if group is not None:  # one flat buffer, one collective
        parts = (*subs, *dense)
        flat = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1)
                          for p in parts])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        at = 0
        for p in parts:
            p.grad = flat[at : at + p.numel()].view_as(p)
            at += p.numel()
    for table, rows, sub in zip(tables, (u_rows, i_rows), subs, strict=True):
        assert sub.grad is not None
        table.grad = (torch.sparse_coo_tensor(rows.unsqueeze(0), sub.grad, table.shape,
                                              is_coalesced=True, check_invariants=False)
                      if sparse else torch.zeros_like(table).index_copy_(0, rows, sub.grad))
    for opt in optimizers:
        opt.step()
    return sse.detach()


_STOP = "stop"


class Group:
    """The joined process group of a ``torchrun`` job; :meth:`close` leaves it.

    ``timeout`` bounds every collective: ranks other than 0 wait in :meth:`receive_round`
    until the next round, so it must exceed the longest gap between rounds.
    """

    def __init__(self, env: DistEnv, device: torch.device, *,
                 timeout: float = 86_400.0) -> None:
        self.env = env
        self.device = device
        self.backend = backend_for(device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(self.backend, init_method="env://", rank=env.rank,
                                    world_size=env.world_size,
                                    timeout=dt.timedelta(seconds=timeout))
        self._owns = True
        log.info("rank %d of %d joined (%s on %s)", env.rank, env.world_size, self.backend,
                 device)

    @property
    def rank(self) -> int:
        """The rank of this process."""
        return self.env.rank

    @property
    def world(self) -> int:
        """Number of ranks."""
        return self.env.world_size

    # rank 0 -> everyone ------------------------------------------------------------
    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; ``obj`` is ignored on the others)."""
        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def send_round(self, payload: tuple[Any, ...]) -> None:
        """Rank 0: the next round's inputs, for :meth:`receive` on the others."""
        self.broadcast(("round", payload))

    def send_forget(self, user_rows: list[int]) -> None:
        """Rank 0: erased users' rows, which every rank zeroes and drops from its replay."""
        self.broadcast(("forget", list(user_rows)))

    def stop(self) -> None:
        """Rank 0: tell the other ranks that no round follows."""
        if self.rank == 0:
            self.broadcast((_STOP, ()))

    def receive(self) -> tuple[str, Any] | None:
        """Other ranks: rank 0's next message (``None`` once it called :meth:`stop`).

        ``("round", inputs)`` or ``("forget", user rows)``.
        """
        kind, payload = self.broadcast(None)
        return None if kind == _STOP else (kind, payload)

    # everyone <-> everyone ---------------------------------------------------------
    def all_gather_rows(self, packed: np.ndarray) -> np.ndarray:
        """Concatenate every rank's ``int32 (3, k_r)`` array, in rank order (k_r may differ)."""
        local = torch.from_numpy(np.ascontiguousarray(packed, dtype=np.int32)).to(self.device)
        sizes = [torch.zeros(1, dtype=torch.int64, device=self.device)
                 for _ in range(self.world)]
        dist.all_gather(sizes, torch.tensor([local.shape[1]], device=self.device))
        counts = [int(s.item()) for s in sizes]
        top = max(counts)
        padded = torch.zeros((3, top), dtype=torch.int32, device=self.device)
        padded[:, : local.shape[1]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        joined = torch.cat([p[:, :c] for p, c in zip(parts, counts, strict=True)], dim=1)
        return joined.cpu().numpy()

    def all_reduce_sum(self, value: Tensor) -> Tensor:
        """The sum of ``value`` over the ranks (in place, returned)."""
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def all_reduce_grads(self, module: nn.Module, sparse_params: Collection[int] = ()) -> None:
        """Sum every parameter's gradient over the ranks, in place (parameter order).

        For a loss each rank scales to its share of the global objective (the ranking
        losses): the summed gradient is then the global minibatch's. A parameter without a
        gradient on this rank takes part with zeros (sparse ones for ``sparse_params``, the
        ``id`` of tables trained with sparse gradients), so every rank makes the same calls.
        """
        for p in module.parameters():
            if not p.requires_grad:
                continue
            g = p.grad
            if g is None:
                if id(p) in sparse_params:
                    g = torch.sparse_coo_tensor(
                        torch.zeros((1, 0), dtype=torch.int64, device=p.device),
                        torch.zeros((0, *p.shape[1:]), dtype=p.dtype, device=p.device), p.shape)
                else:
                    g = torch.zeros_like(p)
            elif g.is_sparse:
                g = g.coalesce()
            dist.all_reduce(g, op=dist.ReduceOp.SUM)
            p.grad = g

    @property
    def sparse_ok(self) -> bool:
        """Whether sparse gradients can be allreduced: gloo yes, NCCL no."""
        return self.backend == "gloo"

    def close(self) -> None:
        """Leave the process group."""
        if self._owns and dist.is_initialized():
            dist.destroy_process_group()
        self._owns = False

    def _object_device(self) -> torch.device | None:
        return self.device if self.device.type == "cuda" else None
