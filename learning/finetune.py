"""The slow learner: train a :class:`DeepRecommender` in rounds of fresh plus replayed samples.

A round maps the fresh string ids through the id tables (evicting stale ids, growing the
tables, re-drawing reused rows), draws ``replay_ratio`` replayed samples per fresh one from
the :class:`~learning.replay.ReplayBuffer`, builds the whole round as one packed host array,
copies it to the device once (pinned, ``non_blocking``), and trains on shuffled minibatches
sliced from device tensors. The inner loop never waits for the device: the loss is summed in
a device tensor and read once per round. The fresh samples go into the buffer afterwards, so
a round never replays its own data. The recommender keeps its weights between rounds.

>>> from learning.torch_models import DeepRecommender
>>> ft = FineTuner(DeepRecommender(n_factors=4, seed=0), device="cpu", batch_size=2)
>>> rep = ft.round(["u1", "u2", "u1"], ["i1", "i1", "i2"], [4.0, 2.0, 5.0], [1.0, 2.0, 3.0])
>>> rep.samples, rep.fresh, rep.replayed, rep.device, rep.loss > 0
(3, 3, 0, 'cpu', True)
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec
import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from learning import mf_round
from learning.device import amp_default, pick_device, to_device
from learning.distributed import Group, row_step, split_range
from learning.errors import ConfigurationError
from learning.rank_loss import LOSSES, ranking_step
from learning.replay import ReplayBuffer
from learning.row_adam import RowAdam
from learning.torch_models import DeepRecommender, EmbeddingModel
from learning.weights import safetensors_metadata

__all__ = ["OPTIMIZERS", "FineTuner", "RoundReport", "make_optimizers"]

log = logging.getLogger(__name__)

#: ``sparse_adam``: SparseAdam on the tables (only touched rows move; as
#: :class:`~learning.row_adam.RowAdam`) + Adam on the rest.
OPTIMIZERS: tuple[str, ...] = ("sparse_adam", "adam", "adagrad")
_TABLES = ("user_table", "item_table")


class _Rows(NamedTuple):
    """A round's fresh samples as table rows (what rank 0 sends the other ranks)."""

    users: np.ndarray
    items: np.ndarray
    new_users: np.ndarray  # rows handed to new ids: re-drawn
    new_items: np.ndarray
    evicted_users: np.ndarray
    evicted_items: np.ndarray
    need_users: int  # rows the id tables hand out: the tables grow to cover them
    need_items: int


class RoundReport(msgspec.Struct, frozen=True):
    """What one round did; ``samples`` per epoch, ``loss`` the mean loss trained on.

    The loss is the squared error (``mse``) or the weighted ranking loss per sample.
    """

    samples: int
    fresh: int
    replayed: int
    epochs: int
    seconds: float
    samples_per_second: float
    loss: float
    device: str
    new_users: int = 0
    new_items: int = 0
    evicted: int = 0


def make_optimizers(module: EmbeddingModel, kind: str, lr: float) -> list[torch.optim.Optimizer]:
    """The optimizers for ``module``: see :data:`OPTIMIZERS`.

    >>> from learning.torch_models import TorchMF
    >>> [type(o).__name__ for o in make_optimizers(TorchMF(2, 2), "sparse_adam", 0.01)]
    ['RowAdam', 'Adam']
    """
    tables = [module.user_table, module.item_table]
    dense = [p for name, p in module.named_parameters() if name not in _TABLES]
    fused = module.global_bias.is_cuda  # one kernel per step for the dense Adam
    if kind == "sparse_adam":
        return [RowAdam(tables, lr=lr),  # SparseAdam's update, cheaper per step
                torch.optim.Adam(dense, lr=lr, fused=fused)]
    if kind == "adam":
        return [torch.optim.Adam(tables + dense, lr=lr, fused=fused)]
    if kind == "adagrad":
        return [torch.optim.Adagrad(tables + dense, lr=lr)]
    raise ConfigurationError(f'unknown optimizer "{kind}"; expected one of {", ".join(OPTIMIZERS)}')


class FineTuner:
    """Round-based trainer of ``recommender`` (warm start: its weights carry over rounds).

    ``device`` is ``auto``/``cpu``/``cuda[:N]``; ``amp`` (bf16 autocast) defaults to on
    with CUDA, off on CPU. ``replay_ratio`` is replayed samples per fresh sample;
    ``replay_all`` replays at least as many samples as the buffer holds (a buffer sized to
    the history then makes each round approach a retraining on all data, warm-started).

    ``group`` (a :class:`~learning.distributed.Group`, under ``torchrun``) makes the tuner
    data-parallel: rank 0 calls :meth:`round` and sends its inputs to the other ranks, which
    run :meth:`follow`; ``buffer`` is then this rank's shard of the replay, ``batch_size``
    the global minibatch (split over the ranks). Sparse optimizers need gloo (NCCL
    allreduces no sparse gradients): use ``adam`` on CUDA. See docs/distributed_finetune.md.

    ``loss`` is ``mse`` (regress the value: the rating task) or a ranking loss, ``softmax``
    or ``bpr`` (:mod:`learning.rank_loss`), where values are the positives' weights and
    ``n_negatives`` popularity-sampled negatives join the in-batch ones; ``logq`` applies
    the sampling correction to the softmax. A sample with a negative value ``-w`` is a
    hard negative (shown, not taken: :func:`learning.rank_loss.ranking_step`), replayed
    like the positives; it is neither a "seen" item of its user nor in the negatives' pool.
    """

    def __init__(self, recommender: DeepRecommender, *, lr: float = 0.01,
                 weight_decay: float = 1e-4, optimizer: str = "sparse_adam",
                 batch_size: int = 4096, epochs_per_round: int = 1, replay_ratio: float = 1.0,
                 replay_all: bool = False, device: str = "auto", amp: bool | None = None,
                 seed: int = 0, group: Group | None = None, loss: str = "mse",
                 n_negatives: int = 64, logq: bool = False):
        if group is not None and optimizer != "adam" and not group.sparse_ok:
            raise ConfigurationError(f'optimizer "{optimizer}" under DDP on {group.backend}: '
                                     'use "adam" (dense gradients; only gloo allreduces '
                                     "sparse ones)")
        if optimizer not in OPTIMIZERS:  # checked here: the optimizers are built on first use
            raise ConfigurationError(f'unknown optimizer "{optimizer}"; expected one of '
                                     f'{", ".join(OPTIMIZERS)}')
        if batch_size < 1 or epochs_per_round < 1 or replay_ratio < 0 or lr <= 0:
            raise ConfigurationError("need batch_size, epochs_per_round >= 1, lr > 0, "
                                     "replay_ratio >= 0")
        if loss not in LOSSES or n_negatives < 0:
            raise ConfigurationError(f'unknown loss "{loss}" (expected one of '
                                     f'{", ".join(LOSSES)}) or n_negatives < 0')
        self.loss = loss
        self.n_negatives = n_negatives
        self.logq = logq
        self.recommender = recommender
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.epochs_per_round = epochs_per_round
        self.replay_ratio = replay_ratio
        self.replay_all = replay_all
        self.device = pick_device(device)
        self.amp = amp_default(self.device) if amp is None else amp
        self.seed = seed
        recommender.to(self.device)
        #: optimizer state made by the compiled rounds before any torch optimizer exists, by
        #: optimizer index (see :meth:`__getattr__`): the layout the optimizers would make
        self._pending: dict[int, dict[Tensor, dict[str, Any]]] = {}
        self._sparse = optimizer in ("sparse_adam", "adagrad")
        self._gen = torch.Generator(device=self.device)
        self._rounds = 0
        self.group = group
        self.compiled_rounds = True

    #: rounds of biased MF on the CPU through :mod:`learning.mf_round` (False: torch); a
    #: class default too, for tuners pickled before it existed
    compiled_rounds: bool = True

    def __getattr__(self, name: str) -> Any:
        """``_opts``, the torch optimizers, built on first use (the compiled rounds need none).

        Building one imports ``torch._dynamo`` (about 2 CPU-s); they take over the state the
        compiled rounds made. Tuners pickled with their optimizers hold ``_opts`` already.
        """
        if name != "_opts" or "_pending" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        opts = make_optimizers(self.recommender.module, self.optimizer, self.lr)
        for j, states in self.__dict__.pop("_pending").items():
            opts[j].state.update(states)
        self._opts = opts
        return opts

    def _states(self) -> list[dict[Tensor, dict[str, Any]]]:
        """Each optimizer's state by parameter, without building the optimizers."""
        if "_opts" in self.__dict__:
            return [opt.state for opt in self._opts]
        return list(self.__dict__.get("_pending", {}).values())

    def config(self) -> dict[str, Any]:
        """Constructor arguments other than the recommender and the device (JSON-ready)."""
        return {"lr": self.lr, "weight_decay": self.weight_decay, "optimizer": self.optimizer,
                "batch_size": self.batch_size, "epochs_per_round": self.epochs_per_round,
                "replay_ratio": self.replay_ratio, "replay_all": self.replay_all,
                "amp": self.amp, "seed": self.seed, "loss": self.loss,
                "n_negatives": self.n_negatives, "logq": self.logq}

    def round(self, fresh_users: Sequence[str], fresh_items: Sequence[str],
              fresh_values: Sequence[float] | np.ndarray, fresh_ts: Sequence[float] | np.ndarray,
              buffer: ReplayBuffer | None = None) -> RoundReport:
        """Train one round on the fresh samples plus replay; then add them to ``buffer``."""
        return self._run(fresh_users, fresh_items, fresh_values, fresh_ts, buffer,
                         self.epochs_per_round)

    def train_full(self, users: Sequence[str], items: Sequence[str],
                   values: Sequence[float] | np.ndarray, ts: Sequence[float] | np.ndarray, *,
                   epochs: int | None = None) -> RoundReport:
        """The "retrain on all data" baseline: ``epochs`` passes over everything, no replay.

        Use a freshly built recommender and tuner for a from-scratch retrain.
        """
        return self._run(users, items, values, ts, None, epochs or self.epochs_per_round)

    def follow(self, buffer: ReplayBuffer | None = None) -> int:
        """Ranks other than 0: train every round rank 0 starts, until it stops; the count."""
        if self.group is None or self.group.rank == 0:
            raise ConfigurationError("follow() is for ranks other than 0 of a torchrun job")
        from learning.erasure import forget_finetuner_row

        done = 0
        while (got := self.group.receive()) is not None:
            kind, payload = got
            if kind == "forget":  # rank 0 erased users (learning.erasure): the same rows here
                for row in payload:
                    forget_finetuner_row(self, row, buffer)
                continue
            rows, values, ts, buffered, epochs = payload
            self._train_rows(rows, values, ts, buffer if buffered else None, epochs,
                             time.perf_counter())
            done += 1
        return done

    def _run(self, users: Sequence[str], items: Sequence[str],
             values: Sequence[float] | np.ndarray, ts: Sequence[float] | np.ndarray,
             buffer: ReplayBuffer | None, epochs: int) -> RoundReport:
        """Map the ids (rank 0 alone under torchrun: it sends the rows), then train."""
        start = time.perf_counter()
        if self.group is not None and self.group.rank != 0:
            raise ConfigurationError("only rank 0 starts rounds; the others follow()")
        rec = self.recommender
        vals = np.asarray(values, dtype=np.float32)
        times = np.asarray(ts, dtype=np.float64)
        n_fresh = len(users)
        if not len(items) == vals.size == times.size == n_fresh:
            raise ValueError("users, items, values and ts must have equal lengths")
        now = float(times.max()) if n_fresh else -np.inf
        ev_u, ev_i = rec.users.evict(now), rec.items.evict(now)
        u_rows = rec.users.lookup(users, now)
        new_u = rec.users.last_new_rows
        i_rows = rec.items.lookup(items, now)
        new_i = rec.items.last_new_rows
        rows = _Rows(u_rows, i_rows, new_u, new_i, ev_u, ev_i, rec.users.rows, rec.items.rows)
        if self.group is not None:  # the rows, not the ids: the others map nothing
            self.group.send_round((rows, vals, times, buffer is not None, epochs))
        return self._train_rows(rows, vals, times, buffer, epochs, start)

    def _train_rows(self, rows: _Rows, vals: np.ndarray, times: np.ndarray,
                    buffer: ReplayBuffer | None, epochs: int, start: float) -> RoundReport:
        rec, dev = self.recommender, self.device
        u_rows, i_rows, new_u, new_i, ev_u, ev_i = rows[:6]
        n_fresh = len(u_rows)
        if buffer is not None and (ev_u.size or ev_i.size):
            buffer.drop_rows(ev_u, ev_i)
        self._make_room(new_u, new_i, (rows.need_users, rows.need_items))
        group = self.group  # under DDP: this rank's buffer holds fresh[rank::world]
        mine = slice(None) if group is None else slice(group.rank, None, group.world)
        n_mine = len(range(n_fresh)[mine])
        observe = getattr(rec, "observe", None)  # a DeepRanker remembers what users saw
        if observe is not None and n_fresh:
            taken = slice(None) if self.loss == "mse" else vals > 0  # not the hard negatives
            observe(u_rows[taken], i_rows[taken], ev_u)
        n_rep = round(self.replay_ratio * n_mine) if buffer is not None and len(buffer) else 0
        if self.replay_all and buffer is not None:  # about the whole history, every round
            n_rep = max(n_rep, len(buffer))
        replay = np.empty((3, n_rep), dtype=np.int32)
        if n_rep:
            assert buffer is not None
            ru, ri, rv = buffer.sample(n_rep)
            replay[0], replay[1], replay[2] = ru, ri, rv.view(np.int32)
        if group is not None:  # every rank's share of the replay, so all hold the same round
            replay = group.all_gather_rows(replay)
            n_rep = replay.shape[1]
        n = n_fresh + n_rep
        packed = np.empty((3, n), dtype=np.int32)  # users | items | values' bits: one copy
        packed[0, :n_fresh], packed[1, :n_fresh] = u_rows, i_rows
        packed[2, :n_fresh] = vals.view(np.int32)
        packed[:, n_fresh:] = replay
        if rec.samples_trained == 0 and n:
            with torch.no_grad():
                rec.module.global_bias.fill_(float(vals.mean()) if n_fresh else 0.0)
        hard = self.loss != "mse" and bool((packed[2].view(np.float32) < 0).any())
        total = self._train(to_device(packed, dev), n, epochs, hard) if n else None
        if buffer is not None and n_mine:  # host work while the device still trains
            buffer.add_batch(u_rows[mine], i_rows[mine], vals[mine], times[mine])
        if group is not None and total is not None:
            total = group.all_reduce_sum(total)
        loss = float(total) / (n * epochs) if total is not None else float("nan")  # 1 sync
        rec.samples_trained += n * epochs
        self._rounds += 1
        seconds = time.perf_counter() - start
        report = RoundReport(n, n_fresh, n_rep, epochs, seconds, n * epochs / max(seconds, 1e-9),
                             loss, str(dev), int(new_u.size), int(new_i.size),
                             int(ev_u.size + ev_i.size))
        log.info("fine-tune round %d: %d samples (%d fresh) x %d epochs, loss %.4f, %.0f/s on %s",
                 self._rounds, n, n_fresh, epochs, loss, report.samples_per_second, dev)
        return report

    def _train(self, packed: Tensor, n: int, epochs: int, hard: bool = False) -> Tensor:
        users, items = packed[0].long(), packed[1].long()
        values = packed[2].view(torch.float32)
        pool = items
        if hard:  # hard negatives are not drawn as the popularity-sampled ones
            taken = items[values > 0]
            pool = taken if taken.numel() else items
        module, bs = self.recommender.module, self.batch_size
        module.train()
        self._gen.manual_seed((self.seed * 1_000_003 + self._rounds) % 2**63)
        if mf_round.applies(self):  # the same round in one compiled call (CPU, MF)
            return mf_round.train(self, users, items, values, n, epochs)
        total = torch.zeros((), device=self.device)
        world, rank = 1, 0
        if self.group is not None:
            world, rank = self.group.world, self.group.rank
        for _ in range(epochs):
            perm = torch.randperm(n, device=self.device, generator=self._gen)
            u, i, v = users[perm], items[perm], values[perm]
            if self.loss != "mse":  # ranking: values are weights; the round's items the pool
                log_q = None
                if self.logq and self.loss == "softmax":
                    m = pool.shape[0]
                    share = torch.bincount(pool, minlength=module.n_items).float() / max(m, 1)
                    log_q = share.clamp(min=1.0 / max(m, 1)).log()
                reduce = None
                if self.group is not None:  # each rank its rows; gradients summed
                    tables = {id(module.user_table), id(module.item_table)} if self._sparse \
                        else set()
                    reduce = functools.partial(self.group.all_reduce_grads, module, tables)
                for s in range(0, n, bs):
                    part = None if self.group is None else split_range(min(bs, n - s), world,
                                                                       rank)
                    total += ranking_step(module, self._opts, u[s : s + bs], i[s : s + bs],
                                          v[s : s + bs], pool, loss=self.loss,
                                          n_negatives=self.n_negatives,
                                          weight_decay=self.weight_decay, sparse=self._sparse,
                                          amp=self.amp, gen=self._gen, log_q=log_q,
                                          part=part, reduce=reduce, has_hard=hard)
                continue
            for s in range(0, n, bs):  # under torchrun: this rank's piece, gradients summed
                total += row_step(module, self._opts, u[s : s + bs], i[s : s + bs],
                                  v[s : s + bs], weight_decay=self.weight_decay,
                                  sparse=self._sparse, amp=self.amp, group=self.group)
        return total  # still on the device: reading it is the round's one host sync

    @torch.no_grad()
    def _make_room(self, new_users: np.ndarray, new_items: np.ndarray,
                   need: tuple[int, int]) -> None:
        """Grow the tables for new rows and pad the optimizer state; zero reused rows."""
        module = self.recommender.module
        self.recommender.ensure_capacity(need)
        module.reset_rows(user_rows=new_users, item_rows=new_items)
        for name, rows in zip(_TABLES, (new_users, new_items), strict=True):
            param = getattr(module, name)
            idx = torch.as_tensor(rows, device=param.device)
            for states in self._states():
                state = states.get(param, {})
                for key, t in list(state.items()):
                    if not isinstance(t, Tensor) or t.dim() == 0:
                        continue
                    if t.shape[0] < param.shape[0]:
                        pad = t.new_zeros((param.shape[0] - t.shape[0], *t.shape[1:]))
                        state[key] = t = torch.cat([t, pad])
                    if idx.numel():
                        t[idx] = 0

    def snapshot(self) -> bytes:
        """Optimizer state and round counter as safetensors bytes (no pickle); see restore."""
        tensors: dict[str, Tensor] = {}
        scalars: dict[str, Any] = {}
        for j, opt in enumerate(self._opts):
            for pid, state in opt.state_dict()["state"].items():
                for key, val in state.items():
                    name = f"opt{j}.{pid}.{key}"
                    if isinstance(val, Tensor):
                        tensors[name] = val.detach().to("cpu").contiguous()
                    else:
                        scalars[name] = val
        meta = {"config": json.dumps(self.config()), "rounds": str(self._rounds),
                "scalars": json.dumps(scalars)}
        return st_save(tensors, metadata=meta)

    @classmethod
    def restore(cls, recommender: DeepRecommender, blob: bytes, device: str = "auto",
                **overrides: Any) -> FineTuner:
        """A tuner for ``recommender`` (restored alongside) resuming exactly after its round.

        ``overrides`` replace configuration values (e.g. ``replay_ratio``) from then on.
        """
        meta = safetensors_metadata(blob)
        tuner = cls(recommender, device=device, **{**json.loads(meta["config"]), **overrides})
        tuner._rounds = int(meta["rounds"])
        flat: dict[str, Any] = {**st_load(blob), **json.loads(meta["scalars"])}
        for j, opt in enumerate(tuner._opts):
            sd = opt.state_dict()
            sd["state"] = {}
            for name, val in flat.items():
                oj, pid, key = name.split(".", 2)
                if oj == f"opt{j}":
                    sd["state"].setdefault(int(pid), {})[key] = val
            opt.load_state_dict(sd)
        return tuner
