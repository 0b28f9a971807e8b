"""OpenMP's wait policy is set for torch before it loads, never over the user's choice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from learning.openmp import passive_wait

ROOT = Path(__file__).resolve().parents[3]


def test_passive_is_set_when_unset_and_torch_not_loaded() -> None:
    env: dict[str, str] = {}
    assert passive_wait(env, torch_loaded=False)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_a_policy_the_user_chose_is_kept() -> None:
    env = {"OMP_WAIT_POLICY": "active"}
    assert not passive_wait(env, torch_loaded=False)
    assert env == {"OMP_WAIT_POLICY": "active"}


def test_nothing_is_set_once_torch_is_loaded() -> None:
    env: dict[str, str] = {}
    assert not passive_wait(env, torch_loaded=True)
    assert env == {}


def test_the_fine_tuner_cli_and_the_bench_worker_set_it_before_importing_torch() -> None:
    """In a fresh interpreter: the CLI module loads no torch, then the call applies."""
    code = ("import os, sys; import lifelong.cli; from learning.openmp import passive_wait; "
            "assert 'torch' not in sys.modules; assert passive_wait(); "
            "import torch; print(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "PASSIVE"
    for path in ("lifelong/cli.py", "bench/ddp.py"):  # the call precedes the torch imports
        text = (ROOT / path).read_text()
        assert text.index("passive_wait()") < text.index("from learning.distributed import")
