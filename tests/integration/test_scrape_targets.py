"""A learner that exits cleanly leaves no scrape target behind (no false LearnerDown page)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from stream.admin import delete_topics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_learn_registers_its_target_and_removes_it_on_a_clean_exit(
        kafka, redis_service, prometheus, unique, signing_key, tmp_path):
    topic = f"it-targets-{unique}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": kafka.address,
           "REDIS_URL": redis_service.address, "PROMETHEUS_URL": prometheus.address,
           "LIFELONG_PROMETHEUS_TARGETS_DIR": str(tmp_path), "LIFELONG_TOPIC": topic,
           "LIFELONG_DLQ_TOPIC": f"{topic}.dlq", "LIFELONG_QUARANTINE_TOPIC": f"{topic}.q",
           "LIFELONG_PREFIX": f"it-targets-{unique}", "LIFELONG_MODEL": f"m{unique}",
           "LIFELONG_GROUP_ID": f"it-targets-{unique}"}
    proc = subprocess.Popen([sys.executable, "-m", "lifelong", "learn", "--idle-timeout", "3"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        target = tmp_path / f"lifelong-learner-m{unique}.json"
        deadline = time.monotonic() + 60
        while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert target.exists(), "the learner never registered its scrape target"
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-2000:]
        assert list(tmp_path.glob("*.json")) == [] and list(tmp_path.glob("*.owner")) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        delete_topics(kafka.address, [topic, f"{topic}.dlq", f"{topic}.q"])
        client = redis.Redis.from_url(redis_service.address)
        keys = list(client.scan_iter(f"it-targets-{unique}:*"))
        if keys:
            client.delete(*keys)
        client.close()
