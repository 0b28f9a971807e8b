"""Scratch diagnostic (issue 8, fourth round): candidate recall per source, and upper bounds.

On the ranked events of a MovieTweetings prefix (``bench.rank_proto``'s protocol), with the
default ``rerank`` running: the true item's rank among the user's unseen items under each
source (five popularity columns, co-occurrence, sequence, item-kNN over the whole history,
user-kNN), so the share of ranked targets each source holds in its top 50 / 100 / 200 / 400;
the recall of unions; the recall of ``rerank``'s actual candidates (the oracle reranker's
HR@10 over that set: it would put the true item first whenever it is a candidate).

    python -m bench.rank_recall --limit 50000
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.rank_proto import load, run
from bench.rank_proto_variants import NeighbourItems
from learning.rank_knn import HistoryKNN
from learning.rank_rerank import ListwiseRerank

SIZES = (10, 50, 100, 200, 400)
POP = ("pop x0.99", "pop x0.999", "pop x0.9999", "pop 1 day", "pop 1 week")


class _Tee:
    """The reranker plus extra sources that learn the same events (scored for recall only)."""

    def __init__(self) -> None:
        self.rerank = ListwiseRerank()
        self.knn = HistoryKNN()
        self.uknn = NeighbourItems()

    @property
    def n_items(self) -> int:
        return self.rerank.n_items

    def candidate_scores(self, user: str, now: float) -> tuple[np.ndarray, np.ndarray]:
        return self.rerank.candidate_scores(user, now)

    def score_items(self, user: str, now: float) -> np.ndarray:
        return self.rerank.score_items(user, now)

    def learn_one(self, user: str, item: int, weight: float, ts: float) -> None:
        for part in (self.rerank, self.knn, self.uknn):
            part.learn_one(user, item, weight, ts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=50_000)
    args = parser.parse_args(argv)
    tee = _Tee()
    names = (*POP, "co-occurrence", "sequence", "item-kNN history", "user-kNN")
    ranks: dict[str, list[int]] = {name: [] for name in names}
    cand: list[bool] = []
    final: list[int] = []
    ctx: list[int] = []

    def on_ranked(user: str, row: int, mine: set[int], ts: float, rank: int) -> None:
        r = tee.rerank
        n = r.n_items
        unseen = np.ones(n, dtype=bool)
        unseen[list(mine)] = False
        cols = [r._counts[:n, j] for j in range(5)]
        personal = [r.co_occurrence.score_items(user), r.sequence.score_items(user),
                    tee.knn.score_items(user), tee.uknn.score_items(user)]
        for name, s in zip(names, cols + personal, strict=True):
            t = s[row]
            if t <= 0:
                ranks[name].append(1 << 30)
            else:
                ranks[name].append(1 + int(np.count_nonzero((s > t) & unseen)))
        rows, _ = r.candidate_scores(user, ts)
        cand.append(bool(np.isin(row, rows)))
        final.append(rank)
        ctx.append(r.context(user, ts))

    result = run(tee, load(args.limit), on_ranked=on_ranked)
    n = result["n"]
    print(f"{args.limit} events, {n} ranked; rerank HR@10 {result['hr']:.4f} "
          f"NDCG@10 {result['ndcg']:.4f}")
    arr = {name: np.array(v) for name, v in ranks.items()}
    print("| source | " + " | ".join(f"top {s}" for s in SIZES) + " |")
    print("| --- | " + " | ".join("---" for _ in SIZES) + " |")
    for name in names:
        print(f"| {name} | " + " | ".join(f"{np.mean(arr[name] <= s):.3f}" for s in SIZES)
              + " |")
    best_pop = np.minimum.reduce([arr[p] for p in POP])
    unions = {
        "union of 5 popularity columns": best_pop,
        "popularity + co + seq": np.minimum.reduce([best_pop, arr["co-occurrence"],
                                                    arr["sequence"]]),
        "popularity + co + seq + item-kNN": np.minimum.reduce(
            [best_pop, arr["co-occurrence"], arr["sequence"], arr["item-kNN history"]]),
        "all sources": np.minimum.reduce([arr[k] for k in names]),
    }
    for name, a in unions.items():
        print(f"| {name} (each source's top N) | "
              + " | ".join(f"{np.mean(a <= s):.3f}" for s in SIZES) + " |")
    cand_a = np.array(cand)
    final_a = np.array(final)
    print(f"\nrerank's candidates hold the true item for {cand_a.mean():.3f} of ranked events "
          f"(= the oracle reranker's HR@10 over them); rerank HR@10 within candidates "
          f"{np.mean(final_a[cand_a] <= 10):.3f}")
    ctx_a = np.array(ctx)
    heavy = (ctx_a >= 1) & (ctx_a <= 4) & (ctx_a == 4)
    for label, sel in (("in session (< 1 h), 20+ events", heavy),
                       ("all", np.ones(len(ctx_a), dtype=bool))):
        print(f"  {label}: share {sel.mean():.3f}, HR {np.mean(final_a[sel] <= 10):.3f}, "
              f"candidate recall {cand_a[sel].mean():.3f}, item-kNN top 100 "
              f"{np.mean(arr['item-kNN history'][sel] <= 100):.3f}, user-kNN top 100 "
              f"{np.mean(arr['user-kNN'][sel] <= 100):.3f}, all sources top 100 "
              f"{np.mean(unions['all sources'][sel] <= 100):.3f}")


if __name__ == "__main__":
    main()
