"""Configuration errors surface at start-up, within 5 s, with a message that says what to fix."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

import lifelong.wiring  # noqa: F401  (imported once here: the 5 s are for the checks)
from lifelong.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture()
def env(monkeypatch, kafka, redis_service, unique, signing_key):
    for var, value in {"KAFKA_BOOTSTRAP_SERVERS": kafka.address,
                       "REDIS_URL": redis_service.address,
                       "LIFELONG_TOPIC": f"it-start-{unique}",
                       "LIFELONG_DLQ_TOPIC": f"it-start-{unique}.dlq",
                       "LIFELONG_QUARANTINE_TOPIC": f"it-start-{unique}.q",
                       "LIFELONG_PREFIX": f"it-start-{unique}"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    yield monkeypatch
    from stream.admin import delete_topics

    delete_topics(kafka.address, [f"it-start-{unique}", f"it-start-{unique}.dlq",
                                  f"it-start-{unique}.q"])


def _learn(*args: str) -> tuple[int, str, float]:
    started = time.monotonic()
    result = runner.invoke(app, ["learn", "--idle-timeout", "1", "--max-events", "1", *args])
    return result.exit_code, " ".join(result.output.split()), time.monotonic() - started


def test_a_missing_signing_key_fails_at_once(env):
    env.delenv("LIFELONG_SIGNING_KEY")
    code, text, seconds = _learn()
    assert code == 1 and "requires a signing key" in text and "LIFELONG_SIGNING_KEY" in text
    assert seconds < 5


def test_an_unknown_blend_model_fails_unless_told_to_wait(env):
    code, text, seconds = _learn("--blend-with", "reco-deeep")
    assert code == 2 and 'model "reco-deeep" has no "production" version' in text
    assert "--wait-for-blend" in text and seconds < 5
    code, text, _ = _learn("--blend-with", "reco-deeep", "--wait-for-blend")
    assert code == 0, text


@pytest.mark.parametrize(("var", "value", "named"), [
    ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1", "KAFKA_BOOTSTRAP_SERVERS"),
    ("REDIS_URL", "redis://127.0.0.1:1/0", "REDIS_URL"),
])
def test_an_unreachable_service_fails_within_seconds(env, var, value, named):
    env.setenv(var, value)
    code, text, seconds = _learn()
    assert code == 1 and value.split("//")[-1].split("/")[0] in text and named in text, text
    assert seconds < 5
