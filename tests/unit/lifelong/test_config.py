import pytest

from lifelong.config import ConfigError, Settings


def test_defaults():
    s = Settings.from_env({})
    assert (s.topic, s.dlq_topic, s.model_kind, s.publish_every_events) == (
        "events", "events.dlq", "BiasedMF", 10_000)


def test_flags_win_over_environment():
    s = Settings.from_env({"LIFELONG_TOPIC": "a"}, topic="b")
    assert s.topic == "b"
    assert Settings.from_env({"LIFELONG_TOPIC": "a"}, topic=None).topic == "a"


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("LIFELONG_PUBLISH_EVERY_EVENTS", "0", "positive integer"),
    ("LIFELONG_PUBLISH_EVERY_SECONDS", "-1", "positive number"),
    ("LIFELONG_METRICS_PORT", "70000", "TCP port"),
    ("REDIS_URL", "localhost:6379", "URL"),
    ("LIFELONG_TOPIC", "has space", "without spaces"),
])
def test_bad_values_name_the_key_and_the_expectation(var, value, expected):
    with pytest.raises(ConfigError, match=rf"{var}=.*{expected}"):
        Settings.from_env({var: value})


def test_unknown_flag():
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.from_env({}, nonsense=1)


def test_task_defaults_to_rating_and_ranking_takes_a_ranking_model():
    assert (Settings.from_env({}).task, Settings.from_env({}).model_kind) == ("rating", "BiasedMF")
    ranking = Settings.from_env({"LIFELONG_TASK": "ranking"})
    assert (ranking.task, ranking.model_kind) == ("ranking", "rerank")
    assert Settings.from_env({"LIFELONG_MODEL_KIND": "bpr"}, task="ranking").model_kind == "bpr"


@pytest.mark.parametrize(("env", "expected"), [
    ({"LIFELONG_TASK": "clicks"}, r"LIFELONG_TASK='clicks': expected one of rating, ranking"),
    ({"LIFELONG_TASK": "ranking", "LIFELONG_MODEL_KIND": "BiasedMF"},
     r"LIFELONG_MODEL_KIND='BiasedMF': with LIFELONG_TASK=ranking expected one of .*blend"),
])
def test_bad_task_settings_name_the_key(env, expected):
    with pytest.raises(ConfigError, match=expected):
        Settings.from_env(env)
