from typer.testing import CliRunner

from lifelong.cli import app
from lifelong.wiring import drift_alarm
from model_store import Registry

runner = CliRunner()


def test_finetune_is_a_command_with_its_options():
    result = runner.invoke(app, ["finetune", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--round-every-events", "--round-every-seconds", "--replay-capacity",
                   "--replay-ratio", "--batch-size", "--device", "--max-regression",
                   "--backlog", "--backlog-format", "--max-events", "--idle-timeout",
                   "--metrics-port", "--kind", "--group"):
        assert option in result.output


def test_the_online_learners_drift_callback_raises_a_store_alarm():
    registry = Registry.from_url("memory://", signer=None)
    drift_alarm(registry, "reco")(1234)
    (_, event), = list(registry.follow("reco", after="0-0", timeout=0.1))
    assert (event.kind, event.detail, event.actor) == (
        "alarm", {"events": 1234, "alarm": "drift"}, "online")


def test_a_store_failure_in_the_drift_callback_is_logged_not_raised(caplog):
    class Down:
        def alarm(self, *args, **kwargs):
            raise ConnectionError("redis down")

    drift_alarm(Down(), "reco")(5)  # type: ignore[arg-type]
    assert "could not raise the drift alarm" in caplog.text
