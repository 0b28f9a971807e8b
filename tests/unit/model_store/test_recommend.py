from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.scorer import ItemScorer
from model_store import InvalidNameError
from model_store.recommend import TopK, is_item_scorer
from tests.unit.model_store.helpers import Const, VectorScorer


def brute_force(model: VectorScorer, user: str, k: int, exclude_seen: bool = True,
                candidates: list[str] | None = None) -> list[tuple[str, float]]:
    """The obvious Python loop the vectorised top-k must agree with."""
    scores = model.score_items(user)
    seen = set(model.seen_items(user).tolist()) if exclude_seen else set()
    allowed = set(candidates) if candidates is not None else None
    rows = [r for r, item in enumerate(model.items)
            if r not in seen and (allowed is None or item in allowed)]
    rows.sort(key=lambda r: (-scores[r], r))
    return [(model.items[r], float(scores[r])) for r in rows[:k]]


def test_reference_model_is_an_item_scorer() -> None:
    model = VectorScorer.random(10)
    assert isinstance(model, ItemScorer) and is_item_scorer(model)
    assert not is_item_scorer(Const(1.0)) and not isinstance(Const(1.0), ItemScorer)


def test_plain_top_k_matches_brute_force() -> None:
    model = VectorScorer.random(500, seed=3)
    for user in ["u0", "u7", "cold"]:
        assert TopK().recommend(model, user, k=10) == brute_force(model, user, 10)


def test_exclude_seen() -> None:
    model = VectorScorer.random(50, seed=1, n_seen=20)
    seen = {model.items[r] for r in model.seen["u1"]}
    got = TopK().recommend(model, "u1", k=50)
    assert len(got) == 30 and not seen & {item for item, _ in got}
    with_seen = TopK().recommend(model, "u1", k=50, exclude_seen=False)
    assert len(with_seen) == 50 and seen <= {item for item, _ in with_seen}
    assert with_seen == brute_force(model, "u1", 50, exclude_seen=False)


def test_candidates_restrict_and_unknown_ids_are_skipped() -> None:
    model = VectorScorer.random(100, seed=2)
    cands = ["i3", "i40", "nope", "i99", "i3", model.items[model.seen["u2"][0]]]
    got = TopK().recommend(model, "u2", k=10, candidates=cands)
    assert [item for item, _ in got] == [i for i, _ in brute_force(model, "u2", 10,
                                                                    candidates=cands)]
    assert {item for item, _ in got} <= {"i3", "i40", "i99"}
    assert len(got) == 3  # duplicates count once, the seen one and "nope" are left out
    assert TopK().recommend(model, "u2", candidates=["nope"]) == []


def test_candidate_index_follows_a_growing_catalogue() -> None:
    model = VectorScorer.random(5, seed=4)
    topk = TopK()
    assert topk.recommend(model, "cold", candidates=["i4", "new"]) == [("i4", model.popularity[4])]
    model.items.append("new")
    model.vectors = np.vstack([model.vectors, np.ones((1, model.vectors.shape[1]))])
    model.popularity = np.append(model.popularity, 5.0)
    assert topk.recommend(model, "cold", candidates=["i4", "new"])[0] == ("new", 5.0)


def test_k_larger_than_catalogue_and_bad_k() -> None:
    model = VectorScorer.random(7, seed=5, n_seen=2)
    assert len(TopK().recommend(model, "u0", k=100)) == 5
    assert len(TopK().recommend(model, "cold", k=100)) == 7
    with pytest.raises(InvalidNameError, match="k=0"):
        TopK().recommend(model, "u0", k=0)


def test_cold_user_gets_a_non_empty_popularity_list() -> None:
    model = VectorScorer.random(30, seed=6)
    got = TopK().recommend(model, "never-seen", k=5)
    order = np.argsort(-model.popularity, kind="stable")[:5]
    assert [item for item, _ in got] == [model.items[r] for r in order]


def test_empty_catalogue_and_not_a_scorer() -> None:
    empty = VectorScorer([], np.zeros((0, 3)), {}, np.zeros(0))
    assert TopK(explore=0.5, diversity=0.5).recommend(empty, "u", k=3) == []
    with pytest.raises(TypeError, match="Const does not implement ItemScorer"):
        TopK().recommend(Const(1.0), "u")  # type: ignore[arg-type]


def test_nan_scores_rank_last_and_shape_is_checked() -> None:
    model = VectorScorer(["a", "b", "c"], np.eye(3), {}, np.array([np.nan, 1.0, 0.5]))
    assert [i for i, _ in TopK().recommend(model, "x", k=3)] == ["b", "c", "a"]
    model.popularity = np.ones(2)
    with pytest.raises(ValueError, match="shape"):
        TopK().recommend(model, "x")


def test_mmr_lambda_one_equals_plain_top_k() -> None:
    model = VectorScorer.random(300, seed=7)
    for user in ["u0", "u3", "cold"]:
        assert TopK(diversity=1.0).recommend(model, user, k=10) == \
            TopK().recommend(model, user, k=10)


def test_mmr_spreads_a_list_of_near_duplicates() -> None:
    # items 0-4 are near copies of one direction and score highest; 5-9 point elsewhere.
    rng = np.random.default_rng(0)
    base = np.zeros((10, 4))
    base[:5, 0] = 1.0
    base[5:, 1:] = rng.normal(size=(5, 3))
    base += rng.normal(scale=0.01, size=base.shape)
    pop = np.array([1.0, 0.99, 0.98, 0.97, 0.96, 0.5, 0.49, 0.48, 0.47, 0.46])
    model = VectorScorer([f"i{n}" for n in range(10)], base, {}, pop)
    plain = TopK().recommend(model, "x", k=4)
    diverse = TopK(diversity=0.3).recommend(model, "x", k=4)
    assert [i for i, _ in plain] == ["i0", "i1", "i2", "i3"]
    assert diverse[0][0] == "i0"  # the most relevant item always comes first
    assert sum(item in {"i0", "i1", "i2", "i3", "i4"} for item, _ in diverse) == 1

    def ild(items: list[tuple[str, float]]) -> float:
        v = base[[int(i[1:]) for i, _ in items]]
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        sims = v @ v.T
        return float(1.0 - sims[np.triu_indices(len(items), 1)].mean())

    assert ild(diverse) > ild(plain) + 0.5


def test_mmr_without_item_vectors_is_plain_top_k() -> None:
    class NoVectors(VectorScorer):
        def item_vectors(self) -> np.ndarray | None:
            return None

    model = NoVectors.random(50, seed=8)
    assert TopK(diversity=0.2).recommend(model, "u1", k=5) == TopK().recommend(model, "u1", k=5)


def test_exploration_share_counts() -> None:
    # the newest 20 rows score lowest, so the plain ranking never shows them
    model = VectorScorer(
        [f"i{n}" for n in range(200)], np.eye(200), {}, np.linspace(1.0, 0.0, 200))
    newest = {f"i{n}" for n in range(180, 200)}
    topk = TopK(explore=0.2, explore_window=20, seed=1)
    lists = [topk.recommend(model, "cold", k=10) for _ in range(50)]
    assert all(len(got) == 10 for got in lists)
    assert all(sum(item in newest for item, _ in got) == 2 for got in lists)
    positions = {n for got in lists for n, (item, _) in enumerate(got) if item in newest}
    assert len(positions) > 5  # explored items land in different slots, not always last
    # a fractional share: 0.25 * 10 = 2.5 -> 2 or 3 slots, 3 about half the time
    half = TopK(explore=0.25, explore_window=20, seed=2)
    counts = [sum(i in newest for i, _ in half.recommend(model, "cold", k=10))
              for _ in range(400)]
    assert set(counts) == {2, 3} and 0.4 < counts.count(3) / 400 < 0.6
    assert TopK().recommend(model, "cold", k=10) == \
        [(f"i{n}", float(model.popularity[n])) for n in range(10)]


def test_exploration_respects_seen_candidates_and_falls_back_to_ranking() -> None:
    model = VectorScorer([f"i{n}" for n in range(30)], np.eye(30), {},
                         np.linspace(1.0, 0.0, 30), seen={"u": [27, 28, 29]})
    topk = TopK(explore=0.5, explore_window=3, seed=0)
    got = topk.recommend(model, "u", k=4)  # every new item is seen: the ranking fills in
    assert [i for i, _ in got] == ["i0", "i1", "i2", "i3"]
    got = topk.recommend(model, "x", k=4, candidates=["i0", "i1", "i2", "i3", "i28"])
    assert "i28" in {i for i, _ in got} and len(got) == 4


def test_determinism_with_a_seed() -> None:
    model = VectorScorer.random(1000, seed=9)

    def run(seed: int) -> list[list[tuple[str, float]]]:
        topk = TopK(explore=0.3, explore_window=50, diversity=0.7, seed=seed)
        return [topk.recommend(model, f"u{n % 20}", k=10) for n in range(30)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_knobs_are_validated() -> None:
    for bad in [{"explore": 1.5}, {"explore": -0.1}, {"diversity": 2.0},
                {"explore_window": 0}, {"pool": 0}]:
        with pytest.raises(InvalidNameError):
            TopK(**bad)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 60), k=st.integers(1, 80), seed=st.integers(0, 10_000),
       explore=st.sampled_from([0.0, 0.1, 0.5]),
       diversity=st.sampled_from([None, 0.0, 0.5, 1.0]))
def test_never_a_seen_item_never_a_duplicate(n: int, k: int, seed: int, explore: float,
                                             diversity: float | None) -> None:
    model = VectorScorer.random(n, n_users=3, seed=seed, n_seen=n // 3)
    got = TopK(explore=explore, diversity=diversity, seed=seed).recommend(model, "u1", k=k)
    items = [i for i, _ in got]
    seen = {model.items[r] for r in model.seen["u1"]}
    assert len(items) == len(set(items)) == min(k, n - len(seen))
    assert not set(items) & seen


def test_item_ids_are_read_once_per_served_catalogue() -> None:
    class Counting(VectorScorer):
        calls = 0

        def item_ids(self) -> list[str]:
            Counting.calls += 1
            return super().item_ids()

    model = Counting.random(100, seed=10)
    topk = TopK()
    for n in range(20):
        topk.recommend(model, f"u{n % 5}", k=5, candidates=["i1", "i2", "i3"])
    assert Counting.calls == 1
    model.items.append("late")  # a grown catalogue is noticed by the score vector's length
    model.vectors = np.vstack([model.vectors, np.zeros((1, model.vectors.shape[1]))])
    model.popularity = np.append(model.popularity, 9.0)
    assert topk.recommend(model, "cold", k=1) == [("late", 9.0)] and Counting.calls == 2
