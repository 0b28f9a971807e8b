import pytest
from typer.testing import CliRunner

from consumers.alarms import drift_alarm
from lifelong.cli import app
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


def test_finetune_help_shows_each_effective_default_and_its_variable():
    import typer

    from lifelong.config import Settings

    command = typer.main.get_command(app).commands["finetune"]  # type: ignore[attr-defined]
    helps = {p.name: p.help or "" for p in command.params}
    defaults = Settings()
    for option, field in (("round_every_events", "round_every_events"), ("group",
                          "finetune_group"), ("holdout_share", "holdout_share"),
                          ("batch_size", "batch_size"), ("factors", "n_factors")):
        var = defaults.ENV[field][0]
        assert f"[default: {getattr(defaults, field)}; env {var}]" in helps[option]
    assert all(p.default is None for p in command.params if p.name in helps and p.name in (
        "round_every_events", "kind", "group", "lr", "device", "epochs", "replay_ratio"))


def test_rendered_help_keeps_the_default_text():
    """What a person sees: the rendered --help (not only the option's help string) shows
    ``[default: X; env VAR]``; rich markup once swallowed it as an unknown tag."""
    from typer.testing import CliRunner

    from lifelong.config import Settings

    defaults = Settings()
    for command, field in (("finetune", "round_every_events"), ("learn", "task"),
                           ("evaluate", None)):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        assert "[default:" in text
        if field is not None:
            var = defaults.ENV[field][0]
            assert f"[default: {getattr(defaults, field)}; env {var}]" in text


def test_finetune_options_come_from_flags_then_environment_then_defaults():
    from lifelong.config import ConfigError, Settings

    env = {"LIFELONG_ROUND_EVERY_EVENTS": "700", "LIFELONG_DEVICE": "cpu",
           "LIFELONG_REPLAY_RATIO": "0", "LIFELONG_MODEL": "m"}
    s = Settings.from_env(env, round_every_events=900)
    assert (s.round_every_events, s.device, s.replay_ratio, s.batch_size) == (900, "cpu", 0.0,
                                                                             4096)
    assert s.deep_model == "m-deep"
    assert Settings.from_env({"LIFELONG_FINETUNE_MODEL": "d"}).deep_model == "d"
    for var, bad in (("LIFELONG_HOLDOUT_SHARE", "0.9"), ("LIFELONG_DEVICE", "tpu"),
                     ("LIFELONG_FINETUNE_KIND", "rnn"), ("LIFELONG_REPLAY_RATIO", "-1")):
        with pytest.raises(ConfigError, match=var):
            Settings.from_env({var: bad})


def test_finetune_refuses_a_partial_torchrun_environment(monkeypatch) -> None:
    from lifelong.cli import app

    for var in ("LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(app, ["finetune", "--device", "cpu"])
    assert result.exit_code == 2  # a configuration error, before any service is contacted
    assert "partial torchrun environment" in result.output
    assert "missing LOCAL_RANK, MASTER_ADDR, MASTER_PORT" in result.output


def test_finetune_sets_torch_threads_first_from_the_flag_or_environment(monkeypatch) -> None:
    import torch

    from lifelong.cli import app

    for var in ("LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RANK", "0")  # a partial torchrun environment: exits before services
    monkeypatch.setenv("WORLD_SIZE", "2")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        result = CliRunner().invoke(app, ["finetune", "--device", "cpu", "--threads", "1"])
        assert result.exit_code == 2 and torch.get_num_threads() == 1
        torch.set_num_threads(2)
        monkeypatch.setenv("LIFELONG_FINETUNE_THREADS", "1")
        result = CliRunner().invoke(app, ["finetune", "--device", "cpu"])
        assert result.exit_code == 2 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
