"""Redis Cluster readiness: every key of a model in one hash slot; old stores migrate."""

from __future__ import annotations

import pytest
import redis
from redis.crc import key_slot
from typer.testing import CliRunner

from lifelong.cli import app
from model_store import ModelStoreError, RedisBackend, Registry
from model_store.keys import LegacyKeys
from model_store.migrate import migrate_hash_tags

pytestmark = pytest.mark.integration


def _fill(reg: Registry) -> None:
    """Every kind of key a model has: versions, chunks, aliases, history, log, audit."""
    for n in range(3):
        reg.publish("reco", bytes([n]) * 10, format="raw")
    reg.publish("reco-deep", b"deep" * 4, format="raw")
    reg.promote("reco", 2, actor="ops")
    reg.alarm("reco", detail={"psi": 0.3})
    reg.backend.append_audit("reco", "erasures", {"receipts": "r1"})


def _keys(client: redis.Redis, prefix: str) -> list[bytes]:
    return sorted(client.scan_iter(match=f"{prefix}:*", count=1000))


def test_all_keys_of_a_model_share_one_hash_slot(redis_url: str, prefix: str,
                                                 client: redis.Redis) -> None:
    reg = Registry(RedisBackend.from_url(redis_url, prefix=prefix), chunk_size=4)
    try:
        _fill(reg)
        keys = [k for k in _keys(client, prefix) if k != f"{prefix}:models".encode()]
        by_model: dict[str, set[int]] = {}
        for key in keys:
            model = key.decode().split("{", 1)[1].split("}", 1)[0]
            by_model.setdefault(model, set()).add(key_slot(key))
        assert by_model == {"reco": {key_slot(b"reco")}, "reco-deep": {key_slot(b"reco-deep")}}
        assert len(keys) >= 15  # chunks, metadata, aliases, history, log, audit, counters
        assert reg.models() == ["reco", "reco-deep"]  # the one key outside a model's slot
    finally:
        reg.close()


def test_a_store_in_the_old_layout_is_refused_then_migrated_by_the_command(
        redis_url: str, prefix: str, client: redis.Redis, monkeypatch) -> None:
    old_backend = RedisBackend.from_url(redis_url, prefix=prefix)
    old_backend.keys = LegacyKeys(prefix)  # write what the previous release wrote
    old = Registry(old_backend, chunk_size=4)
    _fill(old)
    old.close()
    before = _keys(client, prefix)
    assert f"{prefix}:reco:versions".encode() in before
    client.expire(f"{prefix}:reco:v:1:chunk:0", 5000)  # a TTL survives the move

    fresh = Registry(RedisBackend.from_url(redis_url, prefix=prefix))
    with pytest.raises(ModelStoreError, match="lifelong models migrate-keys"):
        fresh.versions("reco")
    fresh.close()

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LIFELONG_PREFIX", prefix)
    dry = CliRunner().invoke(app, ["models", "migrate-keys", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert _keys(client, prefix) == before
    done = CliRunner().invoke(app, ["models", "migrate-keys"])
    assert done.exit_code == 0, done.output
    moved = len(before) - 1  # all but the models set
    assert f"{prefix}: moved {moved} key(s) of 2 model(s)" in done.output

    after = [k.decode() for k in _keys(client, prefix)]
    assert len(after) == len(before)
    assert all("{reco}" in k or "{reco-deep}" in k for k in after if k != f"{prefix}:models")
    assert 4000 < client.ttl(f"{prefix}:{{reco}}:v:1:chunk:0") <= 5000
    reg = Registry(RedisBackend.from_url(redis_url, prefix=prefix))
    try:
        assert [v.number for v in reg.versions("reco")] == [1, 2, 3]
        assert reg.read_blob("reco", 2) == bytes([1]) * 10
        assert reg.get_alias("reco", "production") == 2
        assert [c.to for c in reg.alias_history("reco", "production")] == [2]
        assert reg.backend.read_audit("reco", "erasures")[0][1] == {"receipts": "r1"}
        assert reg.publish("reco", b"next", format="raw").number == 4  # the counter moved too
    finally:
        reg.close()
    assert migrate_hash_tags(client, prefix).keys == 0  # idempotent
