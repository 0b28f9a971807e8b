"""Sharded learners read the erasure topic (real Kafka and Redis): two `lifelong learn`
processes share a 4-partition topic; `lifelong forget --via-topic` erases a user from its
shard, whichever process holds it, exactly once, and no shard's version holds the user.

Then the user's shard's learner stops: the other takes its shards, re-reads the erasure
topic from each shard's own position, and erases nothing a second time; at the end every
shard's version covers the request and none holds the user.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from lifelong.cli import app
from model_store import Registry
from model_store.router import partition_for, shard_name
from stream.producer import EventProducer
from stream.synthetic import SyntheticStream
from tests.integration.consumers.sharded import assigned, sharded_env, start_learner, stop, wait_for

pytestmark = pytest.mark.integration
PARTS = 4
N = 2000


@pytest.fixture()
def env(kafka, redis_service, unique, signing_key):
    yield from sharded_env(kafka.address, redis_service.address, f"it-sherase-{unique}", PARTS,
                           signing_key, erasures=True, extra={"LIFELONG_ITEM_EXCHANGE": "off"})


def _learner(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_learner(env, log, publish_every_events=200, idle_timeout=180)


def test_two_sharded_learners_apply_an_erasure_request_to_the_users_shard_once(env, tmp_path):
    events = list(SyntheticStream(n_events=N, drift_at=(), seed=5))
    top = Counter(e.user_id for e in events).most_common(1)[0][0]
    victim = f"erase-me-{env['LIFELONG_PREFIX']}"  # no other id contains it
    events = [msgspec.structs.replace(e, user_id=victim) if e.user_id == top else e
              for e in events]
    mine = partition_for(victim, PARTS)
    registry = Registry.from_url(env["REDIS_URL"], prefix=env["LIFELONG_PREFIX"])
    logs = [tmp_path / f"learner{n}.log" for n in range(2)]
    procs = [_learner(env, log) for log in logs]
    names = [shard_name("reco", p) for p in range(PARTS)]

    def seen() -> int:
        latest = [registry.latest(n) for n in names]
        return sum(v.extra["events_seen"] for v in latest if v is not None)

    try:
        wait_for("the group to balance", lambda: all(len(assigned(x)) == 2 for x in logs),
              procs, 120)
        with EventProducer(env["KAFKA_BOOTSTRAP_SERVERS"], env["LIFELONG_TOPIC"]) as producer:
            producer.send_all(events, rate=2000.0)
        wait_for("every event learned and published", lambda: seen() >= N, procs, 120)
        assert victim.encode() in registry.read_blob(names[mine], "latest")
        before = {n: registry.latest(n).number for n in names}
        holder = next(k for k, log in enumerate(logs) if mine in assigned(log))
        sent = CliRunner().invoke(app, ["forget", "--user", victim, "--via-topic"], env=env)
        assert sent.exit_code == 0, sent.output
        wait_for("the erasure version", lambda: registry.latest(names[mine]).number
              > before[names[mine]], procs, 60)
        erased = registry.latest(names[mine])
        assert erased.offsets[f"{env['LIFELONG_ERASURE_TOPIC']}:0"] == 1  # covers the request
        for name in names:
            assert victim.encode() not in registry.read_blob(name, "latest"), name
        # the user's shard's holder stops: the other takes every shard, re-reads the
        # request for the shards whose versions recorded no erasure position yet, and
        # applies it to no shard a second time
        procs[holder].send_signal(signal.SIGTERM)
        assert procs[holder].wait(60) == 0
        other = 1 - holder
        wait_for("one learner holding every shard", lambda: len(assigned(logs[other])) == PARTS,
              [procs[other]], 60)
        time.sleep(3)
        for name in names:
            assert victim.encode() not in registry.read_blob(name, "latest"), name
    finally:
        stop(procs, logs)
    assert all(p.returncode == 0 for p in procs)
    for name in names:  # after both stopped: every shard's version covers the request
        assert victim.encode() not in registry.read_blob(name, "latest"), name
        assert registry.latest(name).offsets[f"{env['LIFELONG_ERASURE_TOPIC']}:0"] == 1
    removed = [int(n) for log in logs for n in re.findall(
        r"erased a user on request \((\d+) entries removed\)", log.read_text())]
    assert len(removed) >= PARTS and sum(n > 0 for n in removed) == 1  # once, in one shard
    registry.close()
