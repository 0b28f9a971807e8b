"""bench.ddp: one configuration of the torchrun benchmark, as the benchmark starts it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from bench import ddp


@pytest.mark.parametrize("module", ["mf", "two_tower"])
def test_one_process_config_trains_the_module_and_reports_a_quiet_bound(
        tmp_path: Path, module: str) -> None:
    args = argparse.Namespace(fresh=1500, rounds=1, batch=512, factors=4, module=module,
                              hidden=8, users=300, items=100, capacity=3000, nproc=2,
                              timeout=240.0)
    got = ddp.run_config("one-1t", args, tmp_path / "one.json")
    assert got["world"] == 1 and got["threads"] == 1
    assert got["samples"] == 2 * 1500  # the measured round: fresh + as many replayed
    assert got["samples_per_second"] > 0 and got["loss"] > 0
    # one thread: the bound is about the process's own CPU rate (its main thread's CPU is
    # all of it; two clocks, read microseconds apart), never more than all cores give
    bound, per_cpu = got["quiet_bound_per_second"], got["samples_per_cpu_second"]
    assert 0.98 * per_cpu <= bound <= 1.02 * per_cpu * (os.cpu_count() or 1)
