"""`torchrun --nproc_per_node 2 -m lifelong finetune` on the real servers (CPU, gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from learning import weights
from model_store import Registry
from stream.producer import EventProducer
from stream.synthetic import SyntheticStream

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEEP = "reco-deep"


@pytest.fixture()
def topic(events_topic):
    return events_topic


@pytest.fixture()
def prefix(store_prefix):
    return store_prefix


@pytest.mark.parametrize("kind", ["mf", "two_tower"])
def test_two_ranks_train_every_round_and_only_rank_0_publishes_and_commits(
        kafka, redis_service, topic, prefix, unique, signing_key, kind):
    with EventProducer(kafka.address, topic) as producer:
        producer.send_all(SyntheticStream(n_users=80, n_items=100, n_events=1600,
                                          seed=21).raw())
    group = f"it-ddp-{unique}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update({"PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": kafka.address,
                "REDIS_URL": redis_service.address, "LIFELONG_PREFIX": prefix,
                "LIFELONG_TOPIC": topic, "LIFELONG_MODEL": "reco",
                "LIFELONG_SIGNING_KEY": signing_key, "LIFELONG_DIST_TIMEOUT": "240"})
    env.pop("LIFELONG_SIGNING_KEY_FILE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "--tee", "3", "-m", "lifelong", "finetune", "--group", group, "--kind", kind,
           "--round-every-events", "800", "--min-fresh", "200", "--factors", "8",
           "--batch-size", "256", "--device", "cpu", "--max-events", "1600",
           "--idle-timeout", "20", "--clip", "1,5", "--metrics-port", "0"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "consumed 1600" in output
    assert "rank 1 of 2: trained 2 rounds" in output  # 1600 events: an events + a final round
    registry = Registry.from_url(redis_service.address, prefix=prefix)
    try:
        versions = [v.number for v in registry.versions(DEEP)]
        assert versions == [1, 2]  # one version a round: rank 1 never publishes
        latest = registry.get(DEEP, 2)
        assert sum(latest.offsets.values()) == 1600
        assert weights.load(registry.read_blob(DEEP, 2)).kind == kind
    finally:
        registry.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka.address, client_id="it-ddp-admin")
    try:
        assert sum(o.offset for o in admin.list_group_offsets(group)[group].values()) == 1600
    finally:
        admin.close()
