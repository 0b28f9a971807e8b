"""Deep ranking: losses, the DeepRanker (codec, ItemScorer), ranking gate errors, fold-in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.finetune import FineTuner
from learning.forgetting import WindowScores
from learning.gate import Gate
from learning.rank_deep import DeepRanker, RankingTracker, dump, load, ranking_errors
from learning.rank_deep_online import DeepMix, DeepRankPart
from learning.rankers import Popularity
from learning.replay import ReplayBuffer
from learning.rounds import HoldBack, MemoryDeepStore, RoundBatch, ranking_figures, run_round
from learning.slices import Samples
from model_store.codec import decode, describe, encode
from model_store.recommend import TopK, is_item_scorer
from stream.schema import Event

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def two_groups(n_users: int = 40, n_items: int = 40, per_user: int = 12, seed: int = 0):
    """Users 0..n/2 only touch items of group A (even ids), the others group B (odd)."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        group = u % 2
        for i in rng.choice(np.arange(group, n_items, 2), per_user, replace=False):
            users.append(f"u{u}")
            items.append(f"i{i}")
    order = rng.permutation(len(users))
    return [users[k] for k in order], [items[k] for k in order]


def group_hit_rate(rec: DeepRanker, n_users: int = 40) -> float:
    """Share of each user's top-10 (unseen) items that are of the user's group."""
    ids = rec.item_ids()
    hits = []
    for u in range(n_users):
        scores = rec.score_items(f"u{u}")
        scores[rec.seen_items(f"u{u}")] = -np.inf
        top = np.argsort(-scores)[:10]
        hits.append(np.mean([int(ids[t][1:]) % 2 == u % 2 for t in top]))
    return float(np.mean(hits))


@pytest.mark.parametrize(("loss", "kind"), [("softmax", "mf"), ("bpr", "mf"),
                                            ("softmax", "two_tower")])
def test_ranking_losses_learn_the_groups(loss: str, kind: str) -> None:
    users, items = two_groups(per_user=6)
    rec = DeepRanker(kind, n_factors=8, hidden=16, out_dim=8, seed=1)
    tuner = FineTuner(rec, device="cpu", batch_size=64, epochs_per_round=20, lr=0.05,
                      loss=loss, n_negatives=16, weight_decay=1e-5)
    before = None
    for _ in range(2):
        report = tuner.round(users, items, np.ones(len(users)), np.arange(len(users), dtype=float))
        before = report.loss if before is None else before
    assert report.loss < before
    assert group_hit_rate(rec) > 0.75  # chance is 0.5


def test_unknown_loss_refused() -> None:
    from learning.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        FineTuner(DeepRanker(n_factors=2), device="cpu", loss="hinge")


def test_weights_scale_the_ranking_loss() -> None:
    from learning.finetune import make_optimizers
    from learning.rank_loss import ranking_step
    from learning.torch_models import TorchMF

    u, i = torch.tensor([0, 1]), torch.tensor([0, 1])
    totals = []
    for w in (1.0, 3.0):
        m = TorchMF(2, 2, n_factors=2, seed=0)
        gen = torch.Generator().manual_seed(0)
        totals.append(float(ranking_step(m, make_optimizers(m, "adam", 0.01), u, i,
                                         torch.full((2,), w), i, n_negatives=0, gen=gen,
                                         sparse=False)))
    assert totals[1] == pytest.approx(3 * totals[0], rel=1e-5)


def trained(seed: int = 1) -> DeepRanker:
    users, items = two_groups()
    rec = DeepRanker(n_factors=8, seed=seed)
    FineTuner(rec, device="cpu", batch_size=64, epochs_per_round=10, lr=0.05,
              loss="softmax", n_negatives=8).round(users, items, np.ones(len(users)),
                                                  np.zeros(len(users)))
    return rec


def test_codec_round_trip_serves_recommend() -> None:
    rec = trained()
    blob = encode("deep-ranking", rec)
    version = describe("reco-deep", 1, blob, None, format="deep-ranking")
    clone = decode(version, blob, None)
    assert isinstance(clone, DeepRanker) and is_item_scorer(clone)
    assert clone.config() == rec.config()
    for user in ("u0", "u3", "stranger"):
        np.testing.assert_allclose(clone.score_items(user), rec.score_items(user), rtol=1e-6)
        assert clone.seen_items(user).tolist() == rec.seen_items(user).tolist()
    top = TopK().recommend(clone, "u0", 5)
    seen = {clone.item_ids()[r] for r in clone.seen_items("u0")}
    assert len(top) == 5 and not seen & {item for item, _ in top}
    assert all(int(item[1:]) % 2 == 0 for item, _ in top)  # u0 is in the even group
    assert len(TopK().recommend(clone, "stranger", 5)) == 5  # cold: item biases


def test_seen_lists_are_bounded() -> None:
    rec = DeepRanker(n_factors=2, max_seen=3)
    u = rec.users.lookup(["u"] * 10, 0.0)
    i = rec.items.lookup([f"i{k}" for k in range(10)], 0.0)
    rec.observe(u, i)
    assert len(rec.seen_items("u")) == 3 and rec.seen_items("u").tolist() == [7, 8, 9]
    assert load(dump(rec)).seen_items("u").tolist() == [7, 8, 9]


def test_ranking_errors_hand_computed() -> None:
    rec = trained()
    perfect = Samples(["u0"], [rec.item_ids()[int(np.argmax(
        np.where(np.isin(np.arange(len(rec.item_ids())), rec.seen_items("u0")), -np.inf,
                 rec.score_items("u0"))))]], [1.0])
    assert ranking_errors(rec, perfect) == (0.0, 0.0)
    assert ranking_errors(rec, Samples(["u0"], ["never seen item"], [1.0])) == (1.0, 1.0)
    # rank 2 (exactly one unseen item scores higher): NDCG 1/log2(3), HR 1
    scores = rec.score_items("u1")
    scores[rec.seen_items("u1")] = -np.inf
    second = rec.item_ids()[int(np.argsort(-scores)[1])]
    ndcg_err, hr_err = ranking_errors(rec, Samples(["u1"], [second], [1.0]))
    assert ndcg_err == pytest.approx(1 - 1 / np.log2(3)) and hr_err == 0.0
    assert np.isnan(ranking_errors(rec, Samples())[0])


def test_ranking_gate_in_run_round() -> None:
    users, items = two_groups(per_user=16)
    rec = DeepRanker(n_factors=8, seed=0)
    tuner = FineTuner(rec, device="cpu", batch_size=64, epochs_per_round=5, lr=0.05,
                      loss="softmax", n_negatives=8)
    store, tracker = MemoryDeepStore(), RankingTracker(k=10)
    buffer = ReplayBuffer(5000, recent_window=0)
    split = HoldBack(5)
    outcomes = []
    for half in (slice(0, len(users) // 2), slice(len(users) // 2, None)):
        batch = RoundBatch()
        for n, (u, i) in enumerate(zip(users[half], items[half], strict=True)):
            batch.add(Event(f"e{n}", u, i, "click", 1.0, float(n)), split.hold(), value=2.0)
        out = run_round(tuner, buffer, batch, tracker, Gate(), store.production())
        if out.decision.promote:
            store.promote(store.publish(rec))
        outcomes.append(out)
    assert outcomes[0].decision.promote and outcomes[0].decision.reason == "no production model"
    second = outcomes[1]
    assert second.production is not None  # compared with production on the same slice
    figures = ranking_figures(second.candidate)
    assert 0.0 <= figures["recent_ndcg@10"] <= 1.0 and figures["recent_hr@10"] >= 0.5
    assert isinstance(store.production(), DeepRanker)
    assert 0.0 <= second.candidate.recent_rmse <= 1.0 and len(tracker) == 2


def test_ranking_tracker_is_a_gate_error() -> None:
    bad = WindowScores(0.9, 0.8, float("nan"), float("nan"), ())
    good = WindowScores(0.5, 0.3, float("nan"), float("nan"), ())
    gate = Gate(max_regression=0.02)
    from learning.gate import SliceScores

    assert not gate.decide(SliceScores(bad.recent_rmse), SliceScores(good.recent_rmse)).promote
    assert gate.decide(SliceScores(good.recent_rmse), SliceScores(bad.recent_rmse)).promote


def test_fold_in_follows_a_burst_between_rounds() -> None:
    users, items = two_groups(n_items=40)
    part = DeepRankPart(round_every=10**9, n_factors=8, epochs=10, lr=0.05, n_negatives=8,
                        batch_size=64, seed=0)
    rows = {f"i{k}": k for k in range(40)}
    for u, i in zip(users, items, strict=True):
        part.learn_one(u, rows[i], 1.0, 0.0)
    part.train_round()
    assert part.rounds == 1
    fresh = part.score_items("newcomer")
    for k in (1, 3, 5, 7, 9, 11):  # a burst on group B (odd items)
        part.learn_one("newcomer", k, 1.0, 1.0)
    after = part.score_items("newcomer")
    assert not np.allclose(fresh, after)
    top = np.argsort(-after)[:10]
    assert np.mean(top % 2 == 1) >= 0.8  # their list moved to their group before any round


def test_deep_mix_picks_a_weight_online() -> None:
    users, items = two_groups(n_items=40, per_user=20)
    mix = DeepMix(Popularity(0.999), DeepRankPart(round_every=200, n_factors=8, epochs=5,
                                                 lr=0.05, n_negatives=8, batch_size=64))
    rows = {f"i{k}": k for k in range(40)}
    for u, i in zip(users, items, strict=True):
        mix.learn_one(u, rows[i], 1.0, 0.0)
    assert len(mix.score_items("u0")) == 40
    assert mix.weight > 0  # the personal part beats popularity alone on this stream
    assert mix.describe()["gains"][0] < max(mix.describe()["gains"])


def test_online_ranking_and_the_impression_join_do_not_import_torch() -> None:
    """`learn --task ranking` with the blend and an impression feed stays torch-free; the
    deep model imports torch only when it is built (fresh interpreter)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    code = (
        "import sys\n"
        "from learning.ranking_learner import RankingLearner\n"
        "from consumers.impressions import ImpressionFeed, ImpressionJoin\n"
        "import lifelong.wiring\n"
        "from stream.schema import Event\n"
        "learner = RankingLearner('blend')\n"
        "learner.learn_one(Event('e', 'u', 'i', 'click', 1.0, 0.0))\n"
        "assert 'torch' not in sys.modules\n"
        "RankingLearner('deep')\n"
        "assert 'torch' in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(root),
                                                       "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr


def test_deep_part_pickles_and_continues_like_the_uninterrupted_run() -> None:
    import pickle

    users, items = two_groups(n_items=40, per_user=10)
    rows = {f"i{k}": k for k in range(40)}
    events = list(zip(users, items, strict=True))

    def part() -> DeepRankPart:
        return DeepRankPart(round_every=100, round_growth=0.0, n_factors=4, epochs=1,
                            n_negatives=4, batch_size=32, seed=3)

    whole, first = part(), part()
    for u, i in events:
        whole.learn_one(u, rows[i], 1.0, 0.0)
    for u, i in events[:250]:
        first.learn_one(u, rows[i], 1.0, 0.0)
    resumed = pickle.loads(pickle.dumps(first))
    for u, i in events[250:]:
        resumed.learn_one(u, rows[i], 1.0, 0.0)
    assert resumed.rounds == whole.rounds == 4
    for user in ("u0", "u7", "nobody"):
        np.testing.assert_allclose(resumed.score_items(user), whole.score_items(user),
                                   rtol=1e-5, atol=1e-6)
