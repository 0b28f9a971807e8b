"""`lifelong evaluate --report` then `lifelong report`, as a user runs them, and the page
opened from disk in headless Chromium (Debian's `chromium`; deploy/system-deps.sh installs
it). A missing Chromium fails this test, it never skips it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

pytestmark = pytest.mark.e2e


def _lifelong() -> list[str]:
    exe = shutil.which("lifelong", path=str(Path(sys.executable).parent))
    assert exe, "the `lifelong` script is not installed next to this Python"
    return [exe]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if exe := shutil.which(name):
            return exe
    pytest.fail("headless Chromium is required to check the report page and was not found; "
                "install it (apt-get install -y chromium, or deploy/system-deps.sh)",
                pytrace=False)


def test_report_from_evaluate_opens_in_a_browser_without_a_server(tmp_path):
    from stream.synthetic import SyntheticStream, write

    data = tmp_path / "ratings.tsv"
    write(SyntheticStream(n_events=8000, drift_at=(4000,), seed=2), data, "movielens")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "", "REDIS_URL": ""}
    proc = subprocess.run([*_lifelong(), "evaluate", "--data", str(data), "--clip", "1,5",
                           "--output", str(tmp_path / "report.json"), "--report",
                           str(tmp_path / "page")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "report:" in proc.stdout and (tmp_path / "page" / "index.html").exists()

    again = subprocess.run([*_lifelong(), "report", str(tmp_path / "report.json"), "--output",
                            str(tmp_path / "again")], env=env, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    page = tmp_path / "again" / "index.html"
    srcs = re.findall(r'<img src="([^"]+)"', page.read_text())
    assert {"run0-quality.png", "run0-drift.png", "run0-throughput.png"} <= set(srcs)
    assert all((page.parent / s).stat().st_size > 10_000 for s in srcs)

    # Moved elsewhere, the page still finds its plots: every path is relative.
    moved = shutil.move(str(tmp_path / "again"), str(tmp_path / "moved"))
    shot = tmp_path / "screenshot.png"
    browser = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1400",
         f"--screenshot={shot}", Path(moved, "index.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert browser.returncode == 0 and shot.exists(), browser.stderr[-2000:]
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1400, 1000)
    # The plots drew: many non-white pixels, in colours (lines), not only black text.
    coloured = np.abs(pixels - pixels.mean(axis=-1, keepdims=True)).max(axis=-1) > 0.2
    assert coloured.mean() > 0.002, f"only {coloured.mean():.4%} coloured pixels"
