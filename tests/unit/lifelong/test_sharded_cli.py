"""`learn --sharded`: the flag, its variable and default, and what it refuses up front."""

import pytest
from typer.testing import CliRunner

from lifelong.cli import app
from lifelong.config import ConfigError, Settings

runner = CliRunner()


def test_help_shows_the_flag_its_default_and_variable():
    result = runner.invoke(app, ["learn", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--sharded" in result.output
    assert "[default: False; env LIFELONG_SHARDED]" in " ".join(result.output.split())


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("1", True), ("off", False),
                                            ("No", False)])
def test_the_variable_sets_sharded_mode(raw, value):
    assert Settings.from_env({"LIFELONG_SHARDED": raw}).sharded is value
    assert Settings.from_env({}).sharded is False


def test_a_bad_value_names_the_variable():
    with pytest.raises(ConfigError, match="LIFELONG_SHARDED='maybe': expected true or false"):
        Settings.from_env({"LIFELONG_SHARDED": "maybe"})


@pytest.mark.parametrize("extra", [["--blend-with", "reco-deep"], ["--no-resume"]])
def test_sharded_refuses_what_it_does_not_do_before_connecting(extra):
    result = runner.invoke(app, ["learn", "--sharded", *extra],
                           env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                                "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code != 0
    assert "--sharded always resumes" in result.output


def test_group_settings_are_ones_kafka_python_and_the_broker_accept():
    from kafka import KafkaConsumer

    from lifelong.shard_wiring import GROUP_CONFIG

    assert set(GROUP_CONFIG) <= set(KafkaConsumer.DEFAULT_CONFIG)
    # Kafka's rule: a heartbeat well inside the session; brokers accept 6..1800 s sessions
    assert GROUP_CONFIG["heartbeat_interval_ms"] * 3 <= GROUP_CONFIG["session_timeout_ms"]
    assert 6_000 <= GROUP_CONFIG["session_timeout_ms"] <= 1_800_000
    assert GROUP_CONFIG["heartbeat_interval_ms"] < KafkaConsumer.DEFAULT_CONFIG[
        "heartbeat_interval_ms"]  # a join rebalances sooner than kafka-python's 3 s
