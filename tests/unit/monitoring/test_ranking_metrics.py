"""The ranking learner's rolling figures on /metrics, read from the learner when scraped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from learning.task import get_task
from monitoring.metrics import RankingQualityCollector
from stream.synthetic_implicit import ImplicitStream


def _value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def test_gauges_follow_the_learner_and_appear_with_the_first_ranked_event():
    learner = get_task("ranking", k=5).make_learner("decayed-popularity")
    reg = CollectorRegistry()
    RankingQualityCollector(learner.score, model="reco", registry=reg)
    assert _value(reg, "lifelong_learner_ranking_hit_ratio", model="reco", k="5") is None
    assert _value(reg, "lifelong_learner_ranking_evaluated_total", model="reco") == 0.0
    for event in ImplicitStream(n_events=600, seed=2):
        learner.learn_one(event)
    score = learner.score()
    assert score.n > 0
    assert _value(reg, "lifelong_learner_ranking_hit_ratio", model="reco", k="5") == (
        score.rolling_hr)
    assert _value(reg, "lifelong_learner_ranking_ndcg_ratio", model="reco", k="5") == (
        score.rolling_ndcg)
    assert _value(reg, "lifelong_learner_ranking_coverage_ratio", model="reco", k="5") == (
        score.rolling_coverage)
    assert _value(reg, "lifelong_learner_ranking_evaluated_total", model="reco") == score.n


def test_a_score_read_during_an_update_keeps_the_last_figures():
    learner = get_task("ranking").make_learner("popularity")
    for event in ImplicitStream(n_events=400, seed=3):
        learner.learn_one(event)
    calls = {"n": 0}

    def score():
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("deque mutated during iteration")
        return learner.score()

    reg = CollectorRegistry()
    RankingQualityCollector(score, model="m", registry=reg)
    first = _value(reg, "lifelong_learner_ranking_hit_ratio", model="m", k="10")
    assert first == learner.score().rolling_hr
    assert _value(reg, "lifelong_learner_ranking_hit_ratio", model="m", k="10") == first
