"""``lifelong models ...`` against the real Redis, configured only through the environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from lifelong.cli import app
from model_store import Registry, Signer
from tests.unit.model_store.subscriber_conformance import eventually

pytestmark = pytest.mark.integration

runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


def run(*args: str) -> Any:
    return runner.invoke(app, ["models", *args])


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, prefix: str,
        signing_key: str) -> dict[str, str]:
    """REDIS_URL, a unique LIFELONG_PREFIX and a signing key, as a deployment sets them."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LIFELONG_PREFIX", prefix)
    return {"REDIS_URL": redis_url, "LIFELONG_PREFIX": prefix,
            "LIFELONG_SIGNING_KEY": signing_key}


@pytest.fixture()
def registry(env: dict[str, str]) -> Iterator[Registry]:
    reg = Registry.from_url(env["REDIS_URL"], prefix=env["LIFELONG_PREFIX"])  # key from env
    yield reg
    reg.close()


def test_every_command_through_the_environment(registry: Registry, prefix: str) -> None:
    for i in range(3):
        registry.publish("reco", b"weights-%d" % i, format="safetensors",
                         metadata={"metrics": {"rmse": 1.0 - i / 10}, "events_seen": i})
    registry.publish_object("reco", {"w": 4}, parent=3)
    rows = json.loads(run("list", "reco", "--json").output)
    assert [r["version"] for r in rows] == [1, 2, 3, 4]

    assert run("promote", "reco", "2", "--actor", "ci").output == "reco production: - -> 2\n"
    assert run("promote", "reco", "3", "--actor", "ci").output == "reco production: 2 -> 3\n"
    info = json.loads(run("show", "reco", "production", "--json").output)
    assert (info["version"], info["aliases"], info["metrics"]) == (3, ["production"],
                                                                   {"rmse": 0.8})
    assert info["extra"] == {"events_seen": 2} and info["signed"]
    latest = json.loads(run("show", "reco", "--json").output)
    assert (latest["version"], latest["format"], latest["parent"]) == (4, "river-pickle", 3)

    result = run("rollback", "reco", "--actor", "oncall")
    assert result.exit_code == 0 and "reco production: 3 -> 2 (rolled back)" in result.output
    assert registry.get_alias("reco", "production") == 2

    assert run("gc", "reco", "--keep-last", "0", "--grace-seconds", "0", "--dry-run").output \
        == "reco: would delete 1 version(s): 1\n"
    assert [v.number for v in registry.versions("reco")] == [1, 2, 3, 4]
    assert run("gc", "reco", "--keep-last", "0", "--grace-seconds", "0").output \
        == "reco: deleted 1 version(s): 1\n"
    assert [v.number for v in registry.versions("reco")] == [2, 3, 4]

    result = run("verify", "reco")
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (") == 3 and "signature valid" in result.output

    result = run("watch", "reco", "--from-start", "--timeout", "0.5", "--json")
    kinds = [(e["kind"], e["alias"], e["version"])
             for e in map(json.loads, result.output.splitlines()[1:]) if e]
    assert kinds[-3:] == [("alias", "production", 2), ("alias", "production", 3),
                          ("alias", "production", 2)]


def test_verify_refuses_a_tampered_chunk(registry: Registry, prefix: str,
                                         client: redis.Redis) -> None:
    registry.publish("reco", b"x" * 100, format="safetensors")
    registry.publish_object("reco", {"w": 2})
    client.set(f"{prefix}:{{reco}}:v:1:chunk:0", b"y" * 100)  # same size, different bytes
    result = run("verify", "reco", "1")
    assert result.exit_code == 1
    assert flat(result.output) == ('error: model "reco" version 1: sha256 mismatch '
                                   "(the blob was altered), refusing it")
    every = run("verify", "reco")
    assert every.exit_code == 1 and "reco v2: ok" in every.output
    client.hset(f"{prefix}:{{reco}}:v:2", "signature", "")
    unsigned = run("verify", "reco", "2")
    assert unsigned.exit_code == 1 and "is not signed; refusing" in flat(unsigned.output)


def test_watch_prints_a_publish_made_from_another_thread(
    registry: Registry, prefix: str, client: redis.Redis
) -> None:
    registry.publish("reco", b"before", format="raw")
    channel = f"{prefix}:{{reco}}:events"

    def publish_once_watching() -> None:
        # wait until the watch command has subscribed: no sleeps guessing how long it takes
        assert eventually(lambda: client.pubsub_numsub(channel)[0][1] >= 1, timeout=10)
        registry.publish("reco", b"after", format="raw")
        registry.promote("reco", 2, actor="thread")

    thread = threading.Thread(target=publish_once_watching)
    thread.start()
    result = run("watch", "reco", "--timeout", "3")
    thread.join()
    assert result.exit_code == 0, result.output
    lines = [line.split(" ", 1)[1] for line in result.output.splitlines() if " reco v" in line]
    assert lines == ["publish reco v2: latest 1 -> 2",
                     "alias   reco v2: production - -> 2 by thread"]


def test_watch_runs_until_ctrl_c(registry: Registry, env: dict[str, str],
                                 prefix: str, client: redis.Redis) -> None:
    binary = Path(sys.executable).with_name("lifelong")
    proc = subprocess.Popen([str(binary), "models", "watch", "reco"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert eventually(lambda: client.pubsub_numsub(f"{prefix}:{{reco}}:events")[0][1] >= 1,
                          timeout=30)
        registry.publish("reco", b"one", format="raw")
        assert proc.stdout is not None
        assert proc.stdout.readline().split(" ", 1)[1] == "publish reco v1: latest - -> 1\n"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert "stopped" in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_wrong_signing_key_is_refused(registry: Registry, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    registry.publish_object("reco", {"w": 1})
    monkeypatch.setenv("LIFELONG_SIGNING_KEY", "another-key-0123456789abcdef")
    result = run("verify", "reco", "1")
    assert result.exit_code == 1
    key_id = Signer(b"another-key-0123456789abcdef").key_id
    assert f"configured key is {key_id}" in flat(result.output)
    monkeypatch.delenv("LIFELONG_SIGNING_KEY")
    keyless = run("verify", "reco", "1")
    assert keyless.exit_code == 1 and "requires a signing key" in flat(keyless.output)
