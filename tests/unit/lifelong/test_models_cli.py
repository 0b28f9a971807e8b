"""``lifelong models ...`` over an in-process store (the opener is swapped for a shared one)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from lifelong import wiring
from lifelong.cli import app
from model_store import MemoryBackend, Registry, Signer
from tests.unit.model_store.conformance import KEY

runner = CliRunner()


def flat(text: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture()
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    reg = Registry(MemoryBackend(), signer=Signer(KEY))
    monkeypatch.setattr(wiring, "open_registry", lambda settings: reg)
    return reg


def run(*args: str) -> Any:
    return runner.invoke(app, ["models", *args])


def publish_three(reg: Registry) -> None:
    reg.publish("reco", b"w1", format="safetensors",
                metadata={"metrics": {"rmse": 0.97}, "offsets": {"events:0": 10},
                          "tags": {"learner": "online"}, "events_seen": 10})
    reg.publish("reco", b"w2", format="safetensors", parent=1)
    reg.publish_object("reco", {"w": 3}, parent=2)


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("list", "show", "promote", "rollback", "gc", "watch", "verify"):
        assert command in result.output


def test_list_shows_versions_and_aliases(registry: Registry) -> None:
    publish_three(registry)
    result = run("list", "reco", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["version"], r["aliases"]) for r in rows] == [(1, []), (2, []), (3, ["latest"])]


def test_show_prints_every_field_of_a_version(registry: Registry) -> None:
    publish_three(registry)
    registry.promote("reco", 1, actor="ci")
    result = run("show", "reco", "production", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["version"] == 1 and info["aliases"] == ["production"]
    assert info["format"] == "safetensors" and info["size"] == 2 and info["chunks"] == 1
    assert info["metrics"] == {"rmse": 0.97} and info["offsets"] == {"events:0": 10}
    assert info["tags"] == {"learner": "online"} and info["extra"] == {"events_seen": 10}
    assert info["signed"] is True and info["signature_key_id"] == registry.signer.key_id
    assert info["parent"] is None and info["created"].endswith("+00:00")
    assert len(info["sha256"]) == 64 and info["announced"]
    text = run("show", "reco")  # default: latest
    assert text.exit_code == 0
    lines = dict(line.split(None, 1) for line in text.output.splitlines())
    assert lines["version"] == "3" and lines["format"] == "river-pickle"
    assert lines["parent"] == "2" and lines["aliases"] == '["latest"]'
    assert lines["metrics"] == "-" and lines["signed"] == "True"
    assert run("show", "reco", "2").output.startswith("model             reco\nversion           2")


def test_promote_rollback_print_from_and_to_and_record_the_actor(registry: Registry) -> None:
    publish_three(registry)
    assert run("promote", "reco", "1", "--actor", "ci").output == "reco production: - -> 1\n"
    assert run("promote", "reco", "3", "--actor", "ci").output == "reco production: 1 -> 3\n"
    result = run("promote", "reco", "2", "--alias", "candidate")
    assert result.output == "reco candidate: - -> 2\n"
    result = run("rollback", "reco", "--actor", "oncall")
    assert result.exit_code == 0 and "reco production: 3 -> 1 (rolled back)" in result.output
    history = registry.alias_history("reco", "production")
    assert [(c.kind, c.actor, c.to) for c in history] == [
        ("rollback", "oncall", 1), ("set", "ci", 3), ("set", "ci", 1)]
    assert registry.alias_history("reco", "candidate")[0].actor  # the login name
    result = run("rollback", "reco", "--alias", "candidate")
    assert result.exit_code == 1
    assert 'model "reco" alias "candidate" not found (no earlier version' in flat(result.output)


def test_gc_dry_run_then_delete(registry: Registry) -> None:
    registry.clock = lambda: 1_000.0
    for i in range(5):
        registry.publish("reco", b"v%d" % i, format="raw")
    registry.clock = lambda: 2_000.0
    result = run("gc", "reco", "--keep-last", "1", "--dry-run")
    assert result.output == "reco: would delete 3 version(s): 1, 2, 3\n"
    assert len(registry.versions("reco")) == 5
    assert run("gc", "reco", "--keep-last", "1").output == "reco: deleted 3 version(s): 1, 2, 3\n"
    assert run("gc", "reco").output == "reco: deleted 0 version(s): nothing\n"
    assert run("gc", "reco", "--keep-last", "-1").exit_code == 2


def test_verify_reports_each_version_and_fails_on_tampering(registry: Registry) -> None:
    publish_three(registry)
    result = run("verify", "reco")
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (") == 3
    assert f"signature valid (key {registry.signer.key_id}; blob and metadata)" in result.output
    registry.backend._chunks[("reco", 2)][0] = b"evil"  # type: ignore[attr-defined]
    result = run("verify", "reco")
    assert result.exit_code == 1
    text = flat(result.output)
    assert "reco v2: FAILED: model \"reco\" version 2: sha256 mismatch" in text
    assert '1 of 3 version(s) of model "reco" failed verification' in text
    single = run("verify", "reco", "2")
    assert single.exit_code == 1
    assert flat(single.output).startswith('error: model "reco" version 2: sha256 mismatch')
    assert run("verify", "reco", "latest").exit_code == 0


def test_verify_refuses_altered_metadata(registry: Registry) -> None:
    registry.publish_object("reco", {"w": 1}, metadata={"offsets": {"events:0": 100}})
    registry.backend._meta["reco"][1]["offsets"] = '{"events:0": 0}'  # type: ignore[attr-defined]
    result = run("verify", "reco", "1")
    assert result.exit_code == 1 and "bad signature" in flat(result.output)


def test_verify_refuses_unsigned_and_require_signature(registry: Registry) -> None:
    registry.publish_object("reco", {"w": 1})
    registry.backend._meta["reco"][1]["signature"] = ""  # type: ignore[attr-defined]
    result = run("verify", "reco", "1")
    assert result.exit_code == 1 and "is not signed; refusing" in flat(result.output)
    plain = Registry(registry.backend)  # no key: unsigned raw bytes pass on sha256 alone
    plain.publish("reco", b"raw", format="raw")
    assert run("verify", "reco", "2").exit_code == 0
    assert "signature none" in run("verify", "reco", "2").output
    strict = run("verify", "reco", "2", "--require-signature")
    assert strict.exit_code == 1 and "not signed" in flat(strict.output)


def test_watch_replays_the_log_as_lines_and_json(registry: Registry) -> None:
    publish_three(registry)
    registry.promote("reco", 2, actor="ci")
    result = run("watch", "reco", "--from-start", "--timeout", "0.2")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " reco v" in line]
    assert [line.split(" ", 1)[1] for line in lines] == [
        "publish reco v1: latest - -> 1", "publish reco v2: latest 1 -> 2",
        "publish reco v3: latest 2 -> 3", "alias   reco v2: production - -> 2 by ci"]
    assert "watching reco (latest -> 3, production -> 2)" in result.output
    result = run("watch", "reco", "--from-start", "--timeout", "0.2", "--json",
                 "--alias", "production")
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [(e["kind"], e["version"], e["alias"], e["actor"]) for e in events] == [
        ("alias", 2, "production", "ci")]


def test_watch_prints_a_publish_from_another_thread(registry: Registry) -> None:
    registry.publish("reco", b"before", format="raw")
    # the first call imports the command's modules; the publish below must come after the
    # watcher has started, so warm them up first (a cold start took over 0.5 s in CI)
    assert run("watch", "reco", "--timeout", "0.1").exit_code == 0

    def later() -> None:
        time.sleep(1.0)
        registry.publish("reco", b"after", format="raw")

    thread = threading.Thread(target=later)
    thread.start()
    start = time.monotonic()
    result = run("watch", "reco", "--timeout", "3")
    thread.join()
    assert result.exit_code == 0, result.output
    assert "publish reco v2: latest 1 -> 2" in result.output
    assert "reco v1" not in result.output  # only what happens after it starts
    assert 2.9 < time.monotonic() - start < 12


def test_errors_are_one_line_with_an_exit_code(registry: Registry) -> None:
    publish_three(registry)
    missing = run("show", "reco", "9")
    assert missing.exit_code == 1
    assert flat(missing.output) == 'error: model "reco" version 9 not found'
    assert run("show", "nope").exit_code == 1
    assert run("show", "a:b").exit_code == 2
    assert run("promote", "reco", "0").exit_code == 2
    assert run("verify", "empty").exit_code == 1


class DownBackend(MemoryBackend):
    def models(self) -> list[str]:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    def get_alias(self, model: str, alias: str) -> int | None:
        raise redis.AuthenticationError("invalid username-password pair or user is disabled.")

    def read_meta(self, model: str, numbers: Any) -> Any:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")


def test_redis_failures_are_one_line_too(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry(DownBackend())
    monkeypatch.setattr(wiring, "open_registry", lambda settings: reg)
    auth = run("promote", "reco", "production")
    assert auth.exit_code == 1
    assert "Redis refused the credentials" in flat(auth.output)
    down = run("show", "reco", "1")
    assert down.exit_code == 1 and flat(down.output).startswith("error: Redis: Error 111")
    assert "Traceback" not in down.output
    listing = run("list")
    assert listing.exit_code == 1 and "error: Redis:" in listing.output
