import pytest

from learning.errors import ConfigurationError
from learning.online import OnlineLearner
from learning.ranking_learner import RankingLearner
from learning.task import RankingTask, RatingTask, get_task
from stream.schema import Event


def test_each_task_builds_its_learner_and_names_its_figures():
    rating, ranking = get_task("rating", clip=(1.0, 5.0)), get_task("ranking", k=5)
    assert isinstance(rating, RatingTask) and isinstance(ranking, RankingTask)
    assert isinstance(rating.make_learner("BiasedMF"), OnlineLearner)
    learner = ranking.make_learner(ranking.default_model)
    assert isinstance(learner, RankingLearner) and learner.k == 5
    assert rating.metric_names()[0] == "rmse" and ranking.metric_names()[:2] == ("hr@5",
                                                                                 "ndcg@5")


def test_ranking_weights_are_configurable_with_documented_defaults():
    task = RankingTask()
    assert [task.weight(t) for t in ("view", "click", "cart", "purchase", "rating")] == [
        1.0, 2.0, 3.0, 4.0, 1.0]
    assert RankingTask({"view": 0.5}).weight("view") == 0.5


def test_reports_hold_the_tasks_figures():
    task = get_task("ranking")
    learner = task.make_learner("decayed-popularity")
    for i, (u, it) in enumerate([("a", "x"), ("b", "x"), ("b", "y"), ("a", "y")]):
        learner.learn_one(Event(str(i), u, it, "click", 1.0, float(i)))
    report = task.report(learner)
    assert report["task"] == "ranking" and report["evaluated"] == 1
    assert report["hr@10"] == 1.0 and report["cold_users"] == 2 and report["models"] == {}
    assert get_task("rating").report(OnlineLearner())["rmse"] != 0  # NaN before any event


def test_unknown_task_is_refused():
    with pytest.raises(ConfigurationError, match="unknown task"):
        get_task("clustering")
