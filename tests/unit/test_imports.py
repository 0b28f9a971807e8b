"""River-only code never imports torch (6-11 s and ~800 MB before the first event).

Each check runs in a fresh interpreter: ``sys.modules`` of the test process is shared.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

NO_TORCH = "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("code", [
    "import lifelong.cli",
    "import consumers.worker, consumers.publisher, lifelong.wiring, lifelong.commands",
    "import monitoring.drift, monitoring.metrics, monitoring.exposition",
    # a River learner driven by the worker, with drift and metrics, learns an event
    "from prometheus_client import CollectorRegistry\n"
    "from consumers.worker import LearnerWorker\n"
    "from learning import OnlineLearner\n"
    "from monitoring.drift import ErrorDrift\n"
    "from monitoring.metrics import LearnerMetrics\n"
    "from stream.source import ListDeadLetters, ListSource\n"
    "src = ListSource([b'{\"event_id\":\"1\",\"user_id\":\"u\",\"item_id\":\"i\","
    "\"type\":\"rating\",\"value\":4,\"ts\":1}'])\n"
    "m = LearnerMetrics(CollectorRegistry(), model='m', topic='t')\n"
    "stats = LearnerWorker(src, OnlineLearner('BiasedMF'), ListDeadLetters(), metrics=m,\n"
    "                      drift=ErrorDrift()).run()\n"
    "assert stats.learned == 1, stats",
])
def test_river_only_code_does_not_import_torch(code: str) -> None:
    proc = _run(f"import sys\n{code}\n{NO_TORCH}")
    assert proc.returncode == 0, proc.stderr


def test_lifelong_help_does_not_import_torch() -> None:
    code = ("import sys\nfrom lifelong.cli import app\n"
            "try:\n    app(['--help'], prog_name='lifelong')\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "try:\n    app(['learn', '--help'], prog_name='lifelong')\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            f"{NO_TORCH}")
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout


def test_torch_names_are_still_exported_on_first_use() -> None:
    proc = _run("import sys, learning\n"
                f"{NO_TORCH}\n"
                "from learning import DeepRecommender, FineTuner, weights, pick_device\n"
                "assert 'torch' in sys.modules\n"
                "assert set(learning.__all__) <= set(dir(learning))\n"
                "assert all(getattr(learning, n) is not None for n in learning.__all__)\n"
                "try:\n    learning.nope\nexcept AttributeError:\n    pass\n"
                "else:\n    raise SystemExit('no AttributeError')")
    assert proc.returncode == 0, proc.stderr
