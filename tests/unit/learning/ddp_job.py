"""A short fine-tune job run by ``torchrun`` in tests/unit/learning/test_distributed.py.

``torchrun --standalone --nproc_per_node 2 tests/unit/learning/ddp_job.py OUT REPLAY OPT
[LOSS [MODULE]]`` (MODULE: ``mf``, the default, or ``two_tower``):
rank 0 trains :func:`rounds` and stops the others, which follow; each rank writes its
weights, the gradient of :func:`probe` through DDP and its replay shard's size to
``OUT/rank{r}.safetensors`` / ``OUT/rank{r}.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

ERASED = "u3"  #: the user rank 0 erases after the last round when replaying


def rounds(seed: int = 3, hard: bool = False
           ) -> list[tuple[list[str], list[str], np.ndarray, np.ndarray]]:
    """Three rounds of 301 samples; new ids each round, so the tables grow (and DDP re-wraps).

    ``hard``: every 6th sample is a hard negative (value -w: the ranking losses).
    """
    rng = np.random.default_rng(seed)
    out = []
    for k in range(3):
        n = 301  # odd: the last global minibatch splits unevenly over 2 ranks
        users = [f"u{j}" for j in rng.integers(0, 20 + 30 * k, n).tolist()]
        items = [f"i{j}" for j in rng.integers(0, 15 + 25 * k, n).tolist()]
        values = rng.uniform(1, 5, n).astype(np.float32)
        if hard:
            values[::6] *= -1.0
        out.append((users, items, values,
                    np.arange(n, dtype=np.float64) + 1000.0 * k))
    return out


def tuner_config(replay_ratio: float, optimizer: str, loss: str = "mse") -> dict[str, object]:
    """The fine-tuner's configuration shared by the job and the one-process reference."""
    ranking = {} if loss == "mse" else {"loss": loss, "n_negatives": 5, "logq": True}
    return {"optimizer": optimizer, "batch_size": 64, "epochs_per_round": 2, "lr": 0.02,
            "replay_ratio": replay_ratio, "device": "cpu", "seed": 5, **ranking}


def recommender(kind: str = "mf"):  # type: ignore[no-untyped-def]  # torch imported lazily
    """The model both sides start from (small tables, so they grow; two_tower: small towers)."""
    from learning.torch_models import DeepRecommender
    return DeepRecommender(kind, n_factors=6, hidden=10, out_dim=4, capacity_hint=8, seed=2)


def probe():  # type: ignore[no-untyped-def]
    """A fixed minibatch of 37 rows (odd: uneven pieces) for the gradient check."""
    import torch
    gen = torch.Generator().manual_seed(9)
    return (torch.randint(0, 20, (37,), generator=gen), torch.randint(0, 15, (37,), generator=gen),
            torch.rand(37, generator=gen) * 4 + 1)


def main(out: Path, replay_ratio: float, optimizer: str, loss: str = "mse",
         kind: str = "mf") -> None:
    import torch
    from safetensors.torch import save_file

    from learning.distributed import DistEnv, Group, row_step, set_threads
    from learning.finetune import FineTuner
    from learning.replay import ReplayBuffer

    env = DistEnv.from_environ()
    assert env is not None
    threads = set_threads()  # what `lifelong finetune` does: CPUs // LOCAL_WORLD_SIZE
    group = Group(env, torch.device("cpu"), timeout=120)
    tuner = FineTuner(recommender(kind), group=group,
                      **tuner_config(replay_ratio, optimizer, loss))  # type: ignore[arg-type]
    buffer = ReplayBuffer(10_000, recent_window=100, seed=env.rank)
    losses = []
    erased = {}
    if env.is_leader:
        for cols in rounds(hard=loss != "mse"):
            losses.append(tuner.round(*cols, buffer=buffer).loss)
        if replay_ratio > 0:  # an erasure after the last round: every rank's replay shard
            from learning.erasure import forget_finetuner_user
            row = int(tuner.recommender.users.lookup([ERASED], 0.0, add=False)[0])
            erased = {"row": row, "removed": forget_finetuner_user(tuner, ERASED, buffer=buffer)}
        group.stop()
    else:
        tuner.follow(buffer)
    rows_held = np.concatenate([buffer.snapshot()["reservoir.user_row"],
                                buffer.snapshot()["recent.user_row"]]).tolist()
    state = {k: v.detach().contiguous() for k, v in tuner.recommender.module.state_dict().items()}
    if loss != "mse":  # the ranking losses sum gradients with all_reduce_grads: no probe
        save_file(state, str(out / f"rank{env.rank}.safetensors"))
        (out / f"rank{env.rank}.json").write_text(json.dumps(
            {"buffer": buffer.seen, "losses": losses, "rounds": tuner._rounds,
             "rows_held": rows_held, "erased": erased}))
        group.close()
        return
    users, items, values = probe()  # one step of row_step: this rank's piece, summed
    module = tuner.recommender.module
    row_step(module, [], users, items, values, weight_decay=1e-4, sparse=True, group=group)
    for name in ("user_table", "item_table"):
        grad = getattr(module, name).grad
        state[f"grad.{name}"] = (grad.to_dense() if grad.is_sparse else grad).contiguous()
    save_file(state, str(out / f"rank{env.rank}.safetensors"))
    (out / f"rank{env.rank}.json").write_text(json.dumps(
        {"buffer": buffer.seen, "losses": losses, "rounds": tuner._rounds,
         "rows_held": rows_held, "erased": erased,
         "threads": [threads, torch.get_num_threads()],
         "local_world_size": int(os.environ["LOCAL_WORLD_SIZE"])}))
    group.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3], *sys.argv[4:6])
