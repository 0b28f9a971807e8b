"""A short fine-tune job run by ``torchrun`` in tests/unit/learning/test_distributed.py.

``torchrun --standalone --nproc_per_node 2 tests/unit/learning/ddp_job.py OUT REPLAY``: rank 0
trains :func:`rounds` and stops the others, which follow; each rank writes its weights and
its replay shard's size to ``OUT/rank{r}.safetensors`` / ``OUT/rank{r}.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def rounds(seed: int = 3) -> list[tuple[list[str], list[str], np.ndarray, np.ndarray]]:
    """Three rounds of 301 samples; new ids each round, so the tables grow (and DDP re-wraps)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(3):
        n = 301  # odd: the last global minibatch splits unevenly over 2 ranks
        users = [f"u{j}" for j in rng.integers(0, 20 + 30 * k, n).tolist()]
        items = [f"i{j}" for j in rng.integers(0, 15 + 25 * k, n).tolist()]
        out.append((users, items, rng.uniform(1, 5, n).astype(np.float32),
                    np.arange(n, dtype=np.float64) + 1000.0 * k))
    return out


def tuner_config(replay_ratio: float) -> dict[str, object]:
    """The fine-tuner's configuration shared by the job and the one-process reference."""
    return {"optimizer": "adam", "batch_size": 64, "epochs_per_round": 2, "lr": 0.02,
            "replay_ratio": replay_ratio, "device": "cpu", "seed": 5}


def recommender():  # type: ignore[no-untyped-def]  # torch imported lazily
    """The model both sides start from (small tables, so they grow)."""
    from learning.torch_models import DeepRecommender
    return DeepRecommender("mf", n_factors=6, capacity_hint=8, seed=2)


def main(out: Path, replay_ratio: float) -> None:
    import torch
    from safetensors.torch import save_file

    from learning.distributed import DistEnv, Group
    from learning.finetune import FineTuner
    from learning.replay import ReplayBuffer

    env = DistEnv.from_environ()
    assert env is not None
    group = Group(env, torch.device("cpu"), timeout=120)
    tuner = FineTuner(recommender(), group=group, **tuner_config(replay_ratio))  # type: ignore[arg-type]
    buffer = ReplayBuffer(10_000, recent_window=100, seed=env.rank)
    losses = []
    if env.is_leader:
        for cols in rounds():
            losses.append(tuner.round(*cols, buffer=buffer).loss)
        group.stop()
    else:
        tuner.follow(buffer)
    state = {k: v.detach().contiguous() for k, v in tuner.recommender.module.state_dict().items()}
    save_file(state, str(out / f"rank{env.rank}.safetensors"))
    (out / f"rank{env.rank}.json").write_text(json.dumps(
        {"buffer": buffer.seen, "losses": losses, "rounds": tuner._rounds}))
    group.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]))
