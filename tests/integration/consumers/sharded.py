"""What the sharded-learner integration tests share: the environment of `lifelong learn
--sharded` processes (topics made, keys and topics removed after), starting one, waiting on
them, and reading the partitions each one holds from its log."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis

from stream.admin import TopicSpec, delete_topics, ensure_topics


def sharded_env(kafka_address: str, redis_address: str, name: str, parts: int,
                signing_key: str, *, erasures: bool = False,
                extra: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """The environment of the learners of topic ``name`` (``parts`` partitions); cleans up."""
    topics = [name, f"{name}.dlq", f"{name}.quarantine"] + ([f"{name}.erasures"] * erasures)
    ensure_topics(kafka_address, [TopicSpec(name, parts), *(TopicSpec(t, 1) for t in topics[1:])])
    values = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_address, "REDIS_URL": redis_address,
        "LIFELONG_PREFIX": name, "LIFELONG_TOPIC": name, "LIFELONG_DLQ_TOPIC": topics[1],
        "LIFELONG_QUARANTINE_TOPIC": topics[2], "LIFELONG_PARTITIONS": str(parts),
        "LIFELONG_GROUP_ID": name, "LIFELONG_MODEL": "reco",
        "LIFELONG_SIGNING_KEY": signing_key, "LIFELONG_SHARDED": "true", **(extra or {}),
    }
    for key in ("LIFELONG_SIGNING_KEY_FILE", "LIFELONG_PSEUDONYM_KEY",
                "LIFELONG_PSEUDONYM_KEY_FILE", "LIFELONG_ERASURE_TOPIC"):
        values.pop(key, None)
    if erasures:
        values["LIFELONG_ERASURE_TOPIC"] = topics[3]
    yield values
    delete_topics(kafka_address, topics)
    client = redis.Redis.from_url(redis_address)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def start_learner(env: dict[str, str], log: Path, *, publish_every_events: int,
                  idle_timeout: int) -> subprocess.Popen[bytes]:
    """One `lifelong learn` process of ``env``, its output in ``log``."""
    exe = shutil.which("lifelong", path=str(Path(sys.executable).parent))
    assert exe
    with log.open("wb") as out:
        return subprocess.Popen([exe, "learn", "--publish-every-events",
                                 str(publish_every_events), "--publish-every-seconds", "1",
                                 "--idle-timeout", str(idle_timeout)],
                                env={**env, "COLUMNS": "200"}, stdout=out,
                                stderr=subprocess.STDOUT)


def wait_for(what: str, ready: Callable[[], bool], procs: list[subprocess.Popen[bytes]],
             timeout: float) -> None:
    """Poll ``ready`` until true; fail if a learner died or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert all(p.poll() is None for p in procs), "a learner died by itself"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def assigned(log: Path) -> set[int]:
    """A learner's latest assignment, from its log (``assigned partitions [...]``)."""
    found = re.findall(r"assigned partitions \[([\d, ]*)\]",
                       log.read_text() if log.exists() else "")
    return {int(p) for p in found[-1].split(",") if p.strip()} if found else set()


def stop(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """SIGTERM the learners still running, wait for all, and print their logs' tails
    (pytest shows them on failure)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(60)
    for log in logs:
        if log.exists():
            print(log.name, log.read_text()[-3000:])
