"""RowAdam gives SparseAdam's update: same rows, same moments, same state layout."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.row_adam import RowAdam


def _pair(n: int, dim: int, seed: int) -> tuple[torch.nn.Embedding, torch.nn.Embedding]:
    torch.manual_seed(seed)
    ours = torch.nn.Embedding(n, dim, sparse=True)
    theirs = torch.nn.Embedding(n, dim, sparse=True)
    with torch.no_grad():
        theirs.weight.copy_(ours.weight)
    return ours, theirs


@settings(max_examples=25, deadline=None)
@given(steps=st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=12), min_size=1,
                      max_size=6),
       lr=st.floats(1e-3, 0.5), seed=st.integers(0, 100))
def test_row_adam_follows_sparse_adam(steps: list[list[int]], lr: float, seed: int) -> None:
    ours, theirs = _pair(10, 3, seed)
    opts = RowAdam(ours.parameters(), lr=lr), torch.optim.SparseAdam(theirs.parameters(), lr=lr)
    for rows in steps:
        idx = torch.tensor(rows)
        target = torch.linspace(-1.0, 1.0, len(rows))[:, None]
        for table, opt in zip((ours, theirs), opts, strict=True):
            opt.zero_grad()
            (table(idx) - target).square().sum().backward()
            opt.step()
    assert torch.allclose(ours.weight, theirs.weight, atol=1e-5)
    untouched = sorted(set(range(10)) - {r for rows in steps for r in rows})
    assert torch.equal(ours.weight[untouched], theirs.weight[untouched])
    mine, ref = opts[0].state[ours.weight], opts[1].state[theirs.weight]
    assert mine.keys() == ref.keys() and mine["step"] == ref["step"] == len(steps)
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.allclose(mine[key], ref[key], atol=1e-6)


def test_row_adam_state_loads_into_sparse_adam_and_back() -> None:
    ours, theirs = _pair(6, 2, 0)
    opt = RowAdam(ours.parameters(), lr=0.1)
    ours(torch.tensor([1, 4, 4])).sum().backward()
    opt.step()
    other = torch.optim.SparseAdam(theirs.parameters(), lr=0.1)
    other.load_state_dict(opt.state_dict())
    again = RowAdam(ours.parameters(), lr=0.1)
    again.load_state_dict(other.state_dict())
    assert again.state[ours.weight]["step"] == 1


def test_row_adam_refuses_dense_gradients() -> None:
    table = torch.nn.Embedding(3, 2)
    opt = RowAdam(table.parameters(), lr=0.1)
    table(torch.tensor([0])).sum().backward()
    try:
        opt.step()
    except RuntimeError as exc:
        assert "sparse" in str(exc)
    else:
        raise AssertionError("a dense gradient was accepted")
