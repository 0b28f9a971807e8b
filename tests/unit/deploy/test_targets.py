from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from deploy.targets import ScrapeTarget, prune_targets

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = """
import os, sys, time
from pathlib import Path
from deploy.targets import ScrapeTarget
ScrapeTarget(Path(sys.argv[1]), "learner-x", "127.0.0.1:9999", heartbeat_s=60)
print("ready", flush=True)
if sys.argv[2] == "wait":
    time.sleep(60)
"""


def _owner(tmp_path: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path), mode], text=True,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_clean_exit_removes_the_target(tmp_path: Path) -> None:
    proc = _owner(tmp_path, "exit")
    assert proc.wait(30) == 0
    assert list(tmp_path.iterdir()) == []


def test_a_killed_owner_s_target_is_pruned_by_the_next_registration(tmp_path: Path) -> None:
    proc = _owner(tmp_path, "wait")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert (tmp_path / "learner-x.json").exists()  # nobody cleaned up after a SIGKILL
    with ScrapeTarget(tmp_path, "learner-y", "127.0.0.1:9998", heartbeat_s=60):
        assert sorted(p.name for p in tmp_path.glob("*.json")) == ["learner-y.json"]


def test_a_target_without_heartbeat_expires_and_hand_written_ones_stay(tmp_path: Path) -> None:
    (tmp_path / "manual.json").write_text("[]")
    target = ScrapeTarget(tmp_path, "learner-z", "127.0.0.1:9997", heartbeat_s=60, ttl_s=30)
    target._stop.set()  # its heartbeat stops, as in a frozen container
    assert prune_targets(tmp_path, ttl_s=30) == []
    assert prune_targets(tmp_path, ttl_s=30, now=time.time() + 31) == ["learner-z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manual.json"]


def test_close_leaves_a_target_that_another_process_registered_since(tmp_path: Path) -> None:
    mine = ScrapeTarget(tmp_path, "learner-r", "127.0.0.1:9996", heartbeat_s=60)
    (tmp_path / "learner-r.owner").write_text('{"pid": 1, "host": "elsewhere"}')
    mine.close()
    assert (tmp_path / "learner-r.json").exists()
