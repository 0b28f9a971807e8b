"""Erasure on the real Redis: forget, audit, list older versions, purge; scan for traces."""

from __future__ import annotations

import json

import pytest
import redis
from typer.testing import CliRunner

from consumers.erasure import AUDIT_KIND, receipt
from consumers.publisher import RegistryPublisher
from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from lifelong.cli import app
from model_store import Registry
from stream.pseudonym import Pseudonymizer
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource

pytestmark = pytest.mark.integration

RAW = "erase-me@example.org"
KEY = "integration-pseudonym-key-0123456789"


def _dump(client: redis.Redis, key: bytes) -> bytes:
    """Every byte a key holds, whatever its type (and its name)."""
    kind = client.type(key).decode()
    parts: list[bytes] = [key]
    if kind == "string":
        parts.append(client.get(key) or b"")
    elif kind == "hash":
        for k, v in client.hgetall(key).items():
            parts += [k, v]
    elif kind == "list":
        parts += client.lrange(key, 0, -1)
    elif kind == "set":
        parts += list(client.smembers(key))
    elif kind == "zset":
        parts += client.zrange(key, 0, -1)
    elif kind == "stream":
        for _, fields in client.xrange(key):
            for k, v in fields.items():
                parts += [k, v]
    else:
        raise AssertionError(f"unexpected Redis type {kind} for {key!r}")
    return b"\0".join(parts)


def _traces(client: redis.Redis, prefix: str, needles: list[bytes],
            skip: tuple[bytes, ...] = ()) -> list[bytes]:
    return [key for key in client.scan_iter(f"{prefix}:*")
            if not key.startswith(skip) and any(n in _dump(client, key) for n in needles)]


@pytest.fixture()
def store(redis_service, store_prefix, monkeypatch):
    prefix = store_prefix  # its keys are deleted afterwards
    monkeypatch.setenv("REDIS_URL", redis_service.address)
    monkeypatch.setenv("LIFELONG_PREFIX", prefix)
    monkeypatch.setenv("LIFELONG_PSEUDONYM_KEY", KEY)
    monkeypatch.delenv("LIFELONG_PSEUDONYM_KEY_FILE", raising=False)
    reg = Registry.from_url(redis_service.address, prefix=prefix)
    client = redis.Redis.from_url(redis_service.address)
    yield reg, client, prefix
    client.close()
    reg.close()


def _learn(reg: Registry, p: Pseudonymizer) -> None:
    """Three versions learned from raw events through the pseudonymising worker."""
    import time

    now = time.time()
    users = [RAW, "other-1", "other-2", "other-3"]
    raw = [encode(Event(f"e{k}", users[k % 4], f"i{k % 9}", "rating", float(1 + k % 5),
                        now - 300 + k)) for k in range(240)]
    worker = LearnerWorker(ListSource(raw, batch_size=80), OnlineLearner(), ListDeadLetters(),
                           publisher=RegistryPublisher(reg, "reco"), publish_every_events=80,
                           pseudonymizer=p)
    worker.run()
    assert worker.stats.learned == 240 and len(reg.versions("reco")) == 3


def test_forget_publishes_a_clean_version_audits_it_and_purges_older_ones(store) -> None:
    reg, client, prefix = store
    p = Pseudonymizer(KEY.encode())
    pseudonym = p(RAW)
    needles = [RAW.encode(), pseudonym.encode()]
    _learn(reg, p)
    reg.promote("reco", 2, actor="test")  # production on a version that holds the user
    assert _traces(client, prefix, needles)  # the scan does find the user before erasure

    result = CliRunner().invoke(app, ["forget", "--user", "-", "--json"], input=RAW + "\n")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])  # logs go before it
    assert RAW not in result.output and pseudonym not in result.output
    assert (report["version"], report["parent"], report["older"]) == (4, 3, [1, 2, 3])
    assert report["removed"] > 0 and report["receipts"] == [receipt(pseudonym)]
    new, parent = reg.get("reco", 4), reg.get("reco", 3)
    assert new.offsets == parent.offsets and new.parent == 3
    assert all(n not in reg.read_blob("reco", 4) for n in needles)
    _, served = reg.load_object("reco", "latest")
    assert served.forget_user(pseudonym) == 0  # already gone (a prediction would add it)

    audit = reg.audit("reco", AUDIT_KIND)
    assert len(audit) == 1 and audit[0][1]["receipts"] == receipt(pseudonym)
    assert audit[0][1]["older"] == "1,2,3" and audit[0][1]["version"] == "4"
    older_chunks = tuple(f"{prefix}:{{reco}}:v:{n}:chunk:".encode() for n in (1, 2, 3))
    assert _traces(client, prefix, needles, skip=older_chunks) == []  # audit, log, aliases

    runner = CliRunner()
    result = runner.invoke(app, ["models", "gc", "reco", "--purge-user", RAW])
    assert result.exit_code == 0, result.output
    assert "purged 2 version(s): 1, 3" in result.output and "kept version 2" in result.output
    assert [v.number for v in reg.versions("reco")] == [2, 4]
    result = runner.invoke(app, ["models", "gc", "reco", "--purge-user", RAW, "--move-aliases"])
    assert result.exit_code == 0, result.output
    assert [v.number for v in reg.versions("reco")] == [4]
    assert reg.aliases("reco") == {"latest": 4, "production": 4}
    assert _traces(client, prefix, needles) == []


def test_forget_on_a_sharded_model_erases_the_users_shard_only(store) -> None:
    """`forget --model reco` where reco is sharded (learn --sharded): the user's events
    went to one partition; that shard gets an erased version, the others none.
    (`--via-topic` on a sharded model: tests/integration/consumers/test_shard_erasure.py.)"""
    from model_store.router import ShardManifest, partition_for, shard_name, write_manifest

    reg = store[0]
    p = Pseudonymizer(KEY.encode())
    write_manifest(reg, ShardManifest("reco", "events", 4))
    users = [RAW, *(f"other-{k}" for k in range(12))]
    by_shard: dict[int, list[str]] = {}
    for user in users:  # the producer pseudonymises: events keyed (and so sharded) by pseudonym
        by_shard.setdefault(partition_for(p(user), 4), []).append(user)
    for shard, members in by_shard.items():
        learner = OnlineLearner()
        for k in range(60):
            learner.learn_one(Event(f"e{shard}-{k}", p(members[k % len(members)]), f"i{k % 7}",
                                    "rating", float(1 + k % 5), 1e9 + k))
        reg.publish_object(shard_name("reco", shard), learner)
    mine = shard_name("reco", partition_for(p(RAW), 4))
    before = {shard_name("reco", k): reg.latest(shard_name("reco", k)).number for k in by_shard}
    result = CliRunner().invoke(app, ["forget", "--user", RAW, "--model", "reco", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["sharded"] and [s["model"] for s in out["shards"]] == [mine]
    assert out["shards"][0]["removed"] > 0 and RAW not in result.output
    for shard, number in before.items():
        assert reg.latest(shard).number == number + (shard == mine)
    assert p(RAW).encode() not in reg.read_blob(mine, "latest")
