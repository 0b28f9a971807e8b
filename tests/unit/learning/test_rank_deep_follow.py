"""The published deep ranker followed by the online ranking learner (learn --blend-with)."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pytest

from consumers.deep_follow import follow_deep
from consumers.deep_publisher import DeepPublisher
from learning.errors import ConfigurationError
from learning.finetune import FineTuner
from learning.rank_deep import DeepRanker
from learning.rank_deep_follow import FollowedDeep
from learning.ranking_learner import RankingLearner
from learning.torch_models import DeepRecommender
from model_store import Registry
from stream.schema import Event
from tests.unit.learning.test_rank_deep import two_groups

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained() -> DeepRanker:
    """A deep ranker the fine-tuner trained on two taste groups (even / odd items)."""
    users, items = two_groups(n_items=40, per_user=10)
    rec = DeepRanker(n_factors=8, seed=1)
    FineTuner(rec, device="cpu", batch_size=64, epochs_per_round=15, lr=0.05,
              loss="softmax", n_negatives=8).round(
        users, items, np.ones(len(users)), np.arange(len(users), dtype=float))
    return rec


def events(pairs: list[tuple[str, str]], start: int = 0) -> list[Event]:
    return [Event(f"e{start + k}", u, i, "click", 1.0, float(start + k))
            for k, (u, i) in enumerate(pairs)]


def backlog(n_users: int = 40) -> list[Event]:
    users, items = two_groups(n_users=n_users, n_items=40, per_user=6, seed=5)
    return events(list(zip(users, items, strict=True)))


def test_scores_nothing_before_a_version_then_the_model_by_item_id(trained) -> None:
    learner = RankingLearner("decayed-popularity", follow_deep=True)
    for e in backlog():
        learner.learn_one(e)
    part = learner.ranker.deep
    assert isinstance(part, FollowedDeep) and learner.deep_version is None
    assert not part.score_items("u0").any()
    learner.set_deep(trained, version=3)
    assert learner.deep_version == 3
    ids = learner.item_ids()  # the online rows are in first-seen order, not the model's
    deep = trained.score_items("u2")
    model_rows = {item: r for r, item in enumerate(trained.item_ids())}
    expected = np.array([deep[model_rows[i]] for i in ids])
    assert "u2" not in part._fold  # its events came before the version: nothing folded
    assert np.allclose(part.score_items("u2"), expected, atol=1e-5)


def test_new_items_after_a_version_are_mapped_and_unknown_ones_rank_last(trained) -> None:
    learner = RankingLearner("decayed-popularity", follow_deep=True)
    learner.learn_one(Event("a", "u1", "i1", "click", 1.0, 0.0))
    learner.set_deep(trained, version=1)
    for k, item in enumerate(["i3", "not-in-the-model", "i5"]):
        learner.learn_one(Event(f"b{k}", "u1", item, "click", 1.0, 1.0 + k))
    part = learner.ranker.deep
    rows = part._deep_row.tolist()
    assert len(rows) == 4 and rows[2] == -1 and min(rows[:2] + rows[3:]) >= 0
    scores = part.score_items("u3")
    assert scores[2] < np.delete(scores, 2).min()


def test_fold_in_moves_a_new_users_list_to_their_group(trained) -> None:
    learner = RankingLearner("popularity", follow_deep=True)
    for e in backlog():
        learner.learn_one(e)
    learner.set_deep(trained, version=1)
    part = learner.ranker.deep
    assert not np.allclose(part.score_items("newcomer"), 0)  # biases only, then the burst
    burst = events([("newcomer", f"i{k}") for k in (1, 3, 5, 7, 9)], start=1000)
    for e in burst:
        learner.learn_one(e)
    ids = learner.item_ids()
    scores = part.score_items("newcomer")
    scores[learner.seen_items("newcomer")] = -np.inf
    top = [ids[r] for r in np.argsort(-scores)[:10]]
    assert np.mean([int(i[1:]) % 2 == 1 for i in top]) >= 0.8


def test_the_mix_learns_to_use_the_deep_part(trained) -> None:
    learner = RankingLearner("popularity", follow_deep=True)
    stream = backlog()
    for e in stream[:60]:
        learner.learn_one(e)
    learner.set_deep(trained, version=1)
    for e in stream[60:]:
        learner.learn_one(e)
    assert learner.ranker.weight > 0  # the taste groups beat all-time popularity
    assert learner.score().n > 0


def test_checkpoint_round_trip_continues_like_the_uninterrupted_run(trained) -> None:
    stream = backlog()

    def run(cut: int | None) -> RankingLearner:
        learner = RankingLearner("decayed-popularity", follow_deep=True)
        for n, e in enumerate(stream):
            if n == 40:
                learner.set_deep(trained, version=2)
            if n == cut:
                learner = RankingLearner.restore(learner.snapshot())
            learner.learn_one(e)
        return learner

    whole, resumed = run(None), run(150)
    assert resumed.deep_version == 2 and resumed.ranker.deep._ids is resumed._ids
    assert resumed.score().n == whole.score().n
    assert resumed.score().ndcg == pytest.approx(whole.score().ndcg, abs=1e-12)
    for user in ("u0", "u5", "nobody"):
        assert np.allclose(resumed.score_items(user), whole.score_items(user), atol=1e-6)


def test_forget_erases_the_user_from_the_followed_copy(trained) -> None:
    import copy

    model = copy.deepcopy(trained)
    learner = RankingLearner("decayed-popularity", follow_deep=True)
    for e in backlog():
        learner.learn_one(e)
    learner.set_deep(model, version=1)
    for e in events([("u4", "i2"), ("u4", "i6")], start=500):
        learner.learn_one(e)
    assert "u4" in model.users and "u4" in learner.ranker.deep._fold
    assert learner.forget_user("u4") > 0
    assert "u4" not in model.users and "u4" not in learner.ranker.deep._fold
    blob = pickle.dumps(learner.snapshot())
    inner = learner.ranker.deep._blob  # the model's safetensors: ids are JSON strings there
    assert inner is not None and b'\\"u4\\"' not in inner and b'\\"u5\\"' in inner
    from learning.rank_deep import load

    assert "u4" not in load(inner).users and "u5" in load(inner).users
    assert b"\x8c\x02u4\x94" not in blob and b"\x8c\x02u5\x94" in blob  # pickled strings
    cold = learner.ranker.deep.score_items("never-seen")
    assert np.allclose(learner.ranker.deep.score_items("u4"), cold)


def test_set_deep_needs_follow_deep_and_enable_keeps_the_learned_state(trained) -> None:
    learner = RankingLearner("decayed-popularity")
    with pytest.raises(ConfigurationError, match="follow_deep"):
        learner.set_deep(trained)
    stream = backlog()
    for e in stream:
        learner.learn_one(e)
    before = learner.score_items("u1")
    learner.enable_follow_deep()
    learner.enable_follow_deep()  # idempotent
    after = learner.score_items("u1")
    assert learner.follows_deep and np.array_equal(np.argsort(-before, kind="stable"),
                                                   np.argsort(-after, kind="stable"))
    learner.learn_one(Event("z", "u1", stream[0].item_id, "click", 1.0, 1e4))  # keeps going


def test_an_offer_from_another_thread_is_adopted_at_the_next_event(trained) -> None:
    learner = RankingLearner("decayed-popularity", follow_deep=True)
    stream = backlog()
    thread = threading.Thread(target=learner.set_deep, args=(trained, 9))
    for n, e in enumerate(stream):
        if n == 100:
            thread.start()
        learner.learn_one(e)
    thread.join(5)
    assert learner.deep_version == 9 and learner.ranker.deep._model is trained


def test_follow_deep_swaps_published_deep_ranking_versions_and_skips_rating_ones(
        trained, caplog) -> None:
    registry = Registry.from_url("memory://", signer=None)
    publisher = DeepPublisher(registry, "clicks-deep")
    first = publisher.publish(trained)
    assert first.format == "deep-ranking"
    publisher.promote(first.number, reason="test")
    learner = RankingLearner("decayed-popularity", follow_deep=True)
    sub = follow_deep(registry, "clicks-deep", learner)
    try:
        assert sub.wait_for_version(first.number, timeout=10)
        assert learner.deep_version == first.number
        rating = publisher.publish(DeepRecommender(n_factors=2))
        publisher.promote(rating.number, reason="wrong kind")
        assert sub.wait_for_version(rating.number, timeout=10)
        deadline = time.monotonic() + 10  # on_swap runs on the subscriber's thread
        while "not a deep ranking model" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.02)
        assert learner.deep_version == first.number  # kept what it had
    finally:
        sub.stop()
