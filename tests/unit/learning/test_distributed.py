"""Data-parallel fine-tuning: torchrun with 2 CPU ranks (gloo) equals one process."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from learning.distributed import DistEnv, default_threads, set_threads, split_range
from learning.errors import ConfigurationError
from learning.finetune import FineTuner
from learning.replay import ReplayBuffer
from tests.unit.learning import ddp_job

ROOT = Path(__file__).resolve().parents[3]
FULL = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500"}


def torchrun(out: Path, replay_ratio: float, optimizer: str, loss: str = "mse",
             kind: str = "mf") -> None:
    env = {k: v for k, v in os.environ.items() if k not in FULL}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(ROOT / "tests/unit/learning/ddp_job.py"), str(out), str(replay_ratio),
           optimizer, loss, kind]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    # triton's nanobind prints hundreds of "leaked" lines at exit: keep the ranks' own errors
    errors = "\n".join(line for line in done.stderr.splitlines()
                       if "leaked" not in line and "nanobind" not in line)
    assert done.returncode == 0, errors[-6000:]


def one_process(replay_ratio: float, optimizer: str,
                kind: str = "mf") -> tuple[dict[str, torch.Tensor], list[float]]:
    tuner = FineTuner(ddp_job.recommender(kind),
                      **ddp_job.tuner_config(replay_ratio, optimizer))  # type: ignore[arg-type]
    buffer = ReplayBuffer(10_000, recent_window=100, seed=0)
    losses = [tuner.round(*cols, buffer=buffer).loss for cols in ddp_job.rounds()]
    module = tuner.recommender.module
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    users, items, values = ddp_job.probe()  # the whole minibatch's loss, as one process
    module.zero_grad(set_to_none=True)  # not on top of the last step's gradient
    pred, l2 = module.fit_terms(users, items)
    (((pred - values).square().sum() + 1e-4 * l2.sum()) / 37).backward()
    for name in ("user_table", "item_table"):
        state[f"grad.{name}"] = getattr(module, name).grad
    return state, losses


@pytest.mark.parametrize(("optimizer", "kind"),
                         [("sparse_adam", "mf"), ("adam", "mf"), ("sparse_adam", "two_tower")])
def test_two_ranks_give_the_weights_of_one_process_with_the_same_global_batch(
        tmp_path: Path, optimizer: str, kind: str) -> None:
    """MF and the two-tower (whose towers are dense parameters in the same flat buffer)."""
    torchrun(tmp_path, 0.0, optimizer, "mse", kind)
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    meta = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    ref, losses = one_process(0.0, optimizer, kind)
    # the summed gradients of the ranks' pieces are the gradient of the whole minibatch's loss
    assert float(ref["grad.item_table"].abs().max()) > 1e-3
    assert meta[0]["rounds"] == meta[1]["rounds"] == 3
    want = max(1, len(os.sched_getaffinity(0)) // 2)  # each rank: its share of the CPUs
    assert [m["threads"] for m in meta] == [[want, want]] * 2
    assert meta[0]["local_world_size"] == 2
    assert ranks[0]["user_table"].shape[0] > 8  # the tables grew (rank 0's rows, sent)
    for name, want in ref.items():
        torch.testing.assert_close(ranks[0][name], want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ranks[1][name], ranks[0][name], rtol=0, atol=1e-6)
    np.testing.assert_allclose(meta[0]["losses"], losses, rtol=1e-4)
    # the rounds did train (equal weights are not just the untouched initial ones)
    start = ddp_job.recommender(kind).module.state_dict()
    moved = (ref["item_table"][:8] - start["item_table"]).abs().max()
    assert float(moved.detach()) > 1e-2
    if kind == "two_tower":  # the towers trained too, and are compared above
        assert float((ref["user_tower.0.weight"] - start["user_tower.0.weight"]).abs().max()) > 1e-3


@pytest.mark.parametrize(("loss", "optimizer"), [("softmax", "sparse_adam"), ("bpr", "adam")])
def test_ranking_losses_under_two_ranks_give_the_weights_of_one_process(
        tmp_path: Path, loss: str, optimizer: str) -> None:
    """Each rank scores its share of the positives against the whole batch's candidates
    (in-batch and sampled negatives, the same draws; every 6th sample a hard negative); the
    summed gradients make every rank's step the one process's."""
    torchrun(tmp_path, 0.0, optimizer, loss)  # no replay: each rank's shard samples its own
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    meta = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    tuner = FineTuner(ddp_job.recommender(),
                      **ddp_job.tuner_config(0.0, optimizer, loss))  # type: ignore[arg-type]
    buffer = ReplayBuffer(10_000, recent_window=100, seed=0)
    losses = [tuner.round(*cols, buffer=buffer).loss for cols in ddp_job.rounds(hard=True)]
    assert meta[0]["rounds"] == meta[1]["rounds"] == 3
    for name, want in tuner.recommender.module.state_dict().items():
        torch.testing.assert_close(ranks[0][name], want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ranks[1][name], ranks[0][name], rtol=0, atol=1e-6)
    np.testing.assert_allclose(meta[0]["losses"], losses, rtol=1e-4)
    moved = (ranks[0]["item_table"][:8] - ddp_job.recommender().module.item_table).abs().max()
    assert float(moved.detach()) > 1e-2


def test_replay_is_sharded_per_rank_and_the_ranks_stay_in_sync(tmp_path: Path) -> None:
    torchrun(tmp_path, 1.0, "sparse_adam")
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    meta = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [m["buffer"] for m in meta] == [453, 450]  # 3 rounds of 301: samples 0::2, 1::2
    for name in ranks[0]:
        torch.testing.assert_close(ranks[1][name], ranks[0][name], rtol=0, atol=1e-6)
    # rank 0 erased a user after the last round: its row is zero and no shard replays it
    row = meta[0]["erased"]["row"]
    assert row >= 0 and meta[0]["erased"]["removed"] > 1  # the id row and replay samples
    for m, weights in zip(meta, ranks, strict=True):
        assert row not in m["rows_held"] and len(m["rows_held"]) > 100
        assert float(weights["user_table"][row].abs().max()) == 0.0
    users = [u for cols in ddp_job.rounds() for u in cols[0]]
    assert users.count(ddp_job.ERASED) > 4  # both shards held samples of the user
    assert all(np.isfinite(meta[0]["losses"]))


def test_environment_partial_or_bad_is_refused() -> None:
    assert DistEnv.from_environ({"PATH": "/bin"}) is None
    with pytest.raises(ConfigurationError, match="missing MASTER_PORT"):
        DistEnv.from_environ({k: v for k, v in FULL.items() if k != "MASTER_PORT"})
    with pytest.raises(ConfigurationError, match="bad torchrun environment"):
        DistEnv.from_environ({**FULL, "RANK": "2"})
    with pytest.raises(ConfigurationError, match="bad torchrun environment"):
        DistEnv.from_environ({**FULL, "WORLD_SIZE": "two"})
    env = DistEnv.from_environ(FULL)
    assert env is not None and env.device("cpu") == "cpu"


def test_threads_default_to_the_cpus_shared_by_the_local_ranks() -> None:
    assert default_threads({}, cpus=16) == 16
    assert default_threads({"LOCAL_WORLD_SIZE": "2"}, cpus=16) == 8
    assert default_threads({"LOCAL_WORLD_SIZE": "3"}, cpus=2) == 1
    assert default_threads({"LOCAL_WORLD_SIZE": ""}, cpus=4) == 4
    with pytest.raises(ConfigurationError, match="LOCAL_WORLD_SIZE"):
        default_threads({"LOCAL_WORLD_SIZE": "two"}, cpus=4)
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 == torch.get_num_threads()
        assert set_threads(0, {"LOCAL_WORLD_SIZE": "64"}) == 1 == torch.get_num_threads()
        with pytest.raises(ConfigurationError):
            set_threads(-1)
    finally:
        torch.set_num_threads(before)


def test_split_range_covers_every_sample_once() -> None:
    for m in range(0, 40):
        for world in (1, 2, 3, 5):
            pieces = [split_range(m, world, r) for r in range(world)]
            assert pieces[0][0] == 0 and pieces[-1][1] == m
            assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
            assert max(hi - lo for lo, hi in pieces) - min(hi - lo for lo, hi in pieces) <= 1


def test_sparse_optimizers_are_refused_under_ddp_on_nccl() -> None:
    class _Nccl:
        rank, world, backend, sparse_ok = 0, 2, "nccl", False

    with pytest.raises(ConfigurationError, match='on nccl: use "adam"'):
        FineTuner(ddp_job.recommender(), device="cpu", group=_Nccl())  # type: ignore[arg-type]
