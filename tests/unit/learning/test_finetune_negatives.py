"""Hard negatives in the fine-tuner's ranking rounds (shown, not taken: value -w)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.finetune import FineTuner, make_optimizers
from learning.rank_deep import DeepRanker, ranking_errors
from learning.rank_deep_online import DeepRankPart
from learning.rank_loss import ranking_step
from learning.replay import ReplayBuffer
from learning.slices import Samples
from learning.torch_models import TorchMF
from tests.unit.learning.test_rank_deep import two_groups

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _relative(rec: DeepRanker, pairs: list[tuple[str, str]]) -> float:
    """Mean of (score of the pair's item - the user's mean score) over ``pairs``."""
    ids = rec.item_ids()
    out = []
    for user, item in pairs:
        s = rec.score_items(user)
        out.append(float(s[ids.index(item)] - s.mean()))
    return float(np.mean(out))


@pytest.mark.parametrize("loss", ["softmax", "bpr"])
def test_a_round_with_hard_negatives_lowers_their_scores(loss: str) -> None:
    users, items = two_groups(per_user=6)
    # each user was shown two items of their own group that they did not take
    rng = np.random.default_rng(3)
    taken = {(u, i) for u, i in zip(users, items, strict=True)}
    pairs = []
    for u in sorted(set(users)):
        group = int(u[1:]) % 2
        free = [f"i{j}" for j in range(group, 40, 2) if (u, f"i{j}") not in taken]
        pairs += [(u, str(x)) for x in rng.choice(free, 2, replace=False)]
    scores = []
    for with_negatives in (False, True):
        rec = DeepRanker(n_factors=8, seed=1)
        tuner = FineTuner(rec, device="cpu", batch_size=64, epochs_per_round=10, lr=0.05,
                          loss=loss, n_negatives=16, weight_decay=1e-5, seed=0)
        buf = ReplayBuffer(10_000, recent_window=1000)
        us, its, vals = list(users), list(items), [1.0] * len(users)
        if with_negatives:
            us += [u for u, _ in pairs]
            its += [i for _, i in pairs]
            vals += [-1.0] * len(pairs)
        for _ in range(2):  # the second round replays the first one's negatives too
            tuner.round(us, its, vals, np.zeros(len(us)), buf)
        scores.append(_relative(rec, pairs))
        if with_negatives:  # negatives are not what users saw, nor ranked by the gate
            assert all(rec.items.lookup([i], now=0.0, add=False)[0]
                       not in rec.seen_rows(int(rec.users.lookup([u], now=0.0, add=False)[0]))
                       for u, i in pairs)
            assert (buf._res["value"][: buf.reservoir_len] < 0).any()  # replayed like positives
    assert scores[1] < scores[0] - 0.1


def test_ranking_errors_skip_hard_negatives() -> None:
    users, items = two_groups(per_user=6)
    rec = DeepRanker(n_factors=8, seed=1)
    FineTuner(rec, device="cpu", batch_size=64, epochs_per_round=5, lr=0.05,
              loss="softmax", n_negatives=8).round(users, items, np.ones(len(users)),
                                                   np.zeros(len(users)))
    held = Samples(users[:50], items[:50], [1.0] * 50)
    mixed = Samples(users[:50] + users[50:80], items[:50] + items[50:80],
                    [1.0] * 50 + [-1.0] * 30)
    assert ranking_errors(rec, mixed) == ranking_errors(rec, held)


@pytest.mark.parametrize("loss", ["softmax", "bpr"])
def test_a_hard_negative_row_pushes_its_item_down_in_one_step(loss: str) -> None:
    u, i = torch.tensor([0, 1, 0]), torch.tensor([0, 1, 2])
    pool = torch.tensor([0, 1])
    out = []
    for w3 in (2.0, -2.0):  # (user 0, item 2) taken, then shown and not taken
        m = TorchMF(2, 3, n_factors=4, seed=0)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            s = m.item_table[:, :-1] @ m.user_table[0, :-1] + m.item_table[:, -1]
        before = float(s[2] - s[0])
        loss_sum = ranking_step(m, make_optimizers(m, "adam", 0.1), u, i,
                                torch.tensor([1.0, 1.0, w3]), pool, loss=loss, n_negatives=2,
                                gen=gen, sparse=False)
        assert torch.isfinite(loss_sum)
        with torch.no_grad():
            s = m.item_table[:, :-1] @ m.user_table[0, :-1] + m.item_table[:, -1]
        out.append(float(s[2] - s[0]) - before)
    assert out[0] > 0 > out[1]  # up as a positive, down as a hard negative


def test_the_deep_part_sends_negatives_to_its_rounds_and_keeps_its_cadence() -> None:
    part = DeepRankPart(round_every=200, round_growth=0.0, n_factors=8, seed=0)
    users, items = two_groups(per_user=6)
    ids = {}
    for n, (user, item) in enumerate(zip(users[:199], items[:199], strict=True)):
        part.learn_one(user, ids.setdefault(item, len(ids)), 1.0, float(n))
    part.learn_negative(users[0], ids[items[1]], 200.0)
    part.learn_negative(users[0], 10_000, 200.0)  # unknown row: nothing pending
    assert part.rounds == 0 and part._pending[2][-1] == -part.hard_negative_weight
    assert len(part._pending[0]) == 200
    part.learn_one(users[199], ids.setdefault(items[199], len(ids)), 1.0, 201.0)
    assert part.rounds == 1 and part.trained_events == 200  # 200 positives, 1 negative
    assert (part.buffer._res["value"][: part.buffer.reservoir_len] < 0).sum() == 1
