"""Scratch diagnostic (issue 8, fourth round): how much could any reranker of these features gain?

Records, for every ranked event of a MovieTweetings prefix whose true item is among
``rerank``'s candidates, the candidate feature matrix the online model saw (``FEATURES``,
its context, the user's seen candidates masked) and the online model's rank of the true
item. Then fits, OFFLINE and with several epochs (torch, Adam, listwise softmax), (1) the
same crossed linear model and (2) a 2-layer tanh MLP over [features, context one-hot] on
the first ``--train`` share of those lists (in time order) and scores the rest: the share
of lists where the true item reaches the top 10 of the unseen candidates, against the
online model on the same held-out lists. A fit that sees many epochs of the past is an
optimistic bound on what an online reranker over these features could learn.

    python -m bench.rank_offline_bound --limit 50000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.rank_proto import load, run
from learning.rank_rerank import _N_CTX, FEATURES, ListwiseRerank


class _Recorder(ListwiseRerank):
    def __init__(self) -> None:
        super().__init__()
        self.lists: list[tuple[np.ndarray, int, int, np.ndarray, int]] = []

    def _step(self, user: str, item: int, now: float) -> None:
        rows, feats, raw, ctx = self._scored(user, now)
        at = int(np.searchsorted(rows, item))
        seen = self._seen.get(user, set())
        if at < len(rows) and rows[at] == item and item not in seen:
            masked = self._seen_mask(seen, rows) if seen else np.zeros(len(rows), bool)
            z = np.where(masked, -np.inf, raw)
            online = 1 + int(np.count_nonzero(z > z[at]) + np.count_nonzero(z[at + 1:] == z[at]))
            self.lists.append((feats.astype(np.float32), ctx, at, masked, online))
        super()._step(user, item, now)


def _pad(lists: list, idx: np.ndarray) -> tuple:
    import torch

    m = max(len(lists[i][0]) for i in idx)
    f = np.zeros((len(idx), m, len(FEATURES)), np.float32)
    valid = np.zeros((len(idx), m), bool)
    ctx = np.zeros(len(idx), np.int64)
    at = np.zeros(len(idx), np.int64)
    for j, i in enumerate(idx):
        feats, c, a, masked, _ = lists[i]
        f[j, : len(feats)] = feats
        valid[j, : len(feats)] = ~masked
        ctx[j], at[j] = c, a
    return torch.from_numpy(f), torch.from_numpy(valid), torch.from_numpy(ctx), torch.from_numpy(at)


def fit(lists: list, n_train: int, hidden: int, epochs: int, lr: float, seed: int = 0) -> list:
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    d = len(FEATURES)
    w = torch.zeros(_N_CTX, d, requires_grad=True)
    with torch.no_grad():
        w[0, 1] = 1.0
    params = [w]
    if hidden:
        w1 = torch.nn.Linear(d + _N_CTX, hidden)
        w2 = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(w2.weight)
        params += [*w1.parameters(), *w2.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    feats_all = np.concatenate([x[0] for x in lists[:n_train]])
    mu = torch.from_numpy(feats_all.mean(0))
    sd = torch.from_numpy(feats_all.std(0) + 1e-3)
    del feats_all

    def scores(f, valid, ctx):
        s = (f * (w[0] + w[ctx])[:, None, :]).sum(-1)
        if hidden:
            onehot = torch.nn.functional.one_hot(ctx, _N_CTX).float()
            x = torch.cat([(f - mu) / sd, onehot[:, None, :].expand(-1, f.shape[1], -1)], -1)
            s = s + w2(torch.tanh(w1(x)))[..., 0]
        return s.masked_fill(~valid, -1e9)

    test = np.arange(n_train, len(lists))
    batches = [np.arange(i, min(i + 256, n_train)) for i in range(0, n_train, 256)]
    padded = [_pad(lists, b) for b in batches]
    test_padded = [_pad(lists, test[i: i + 512]) for i in range(0, len(test), 512)]
    history = []
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        for j in rng.permutation(len(padded)):
            f, valid, ctx, at = padded[j]
            s = scores(f, valid, ctx)
            loss = -torch.log_softmax(s, -1).gather(1, at[:, None]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            hits = []
            for f, valid, ctx, at in test_padded:
                s = scores(f, valid, ctx)
                t = s.gather(1, at[:, None])
                rank = 1 + (s > t).sum(1)
                hits.append((rank <= 10).numpy())
        history.append(float(np.concatenate(hits).mean()))
        print(f"    hidden {hidden} epoch {epoch + 1}: held-out top-10 share {history[-1]:.4f}",
              flush=True)
    return history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=50_000)
    parser.add_argument("--train", type=float, default=0.6)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args(argv)
    rec = _Recorder()
    started = time.process_time()
    result = run(rec, load(args.limit))
    lists = rec.lists
    n_train = int(args.train * len(lists))
    online = np.array([x[4] for x in lists[n_train:]])
    print(f"{result['n']} ranked, {len(lists)} with the true item a candidate "
          f"({time.process_time() - started:.0f} CPU s); held-out lists {len(online)}: "
          f"online rerank top-10 share {np.mean(online <= 10):.4f}")
    for hidden, lr in ((0, 0.01), (32, 0.003), (64, 0.003)):
        hist = fit(lists, n_train, hidden, args.epochs, lr)
        print(f"  offline {'linear' if not hidden else f'MLP {hidden}'}: best held-out "
              f"{max(hist):.4f} (epoch {int(np.argmax(hist)) + 1}), last {hist[-1]:.4f}")


if __name__ == "__main__":
    main()
