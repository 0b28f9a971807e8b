"""Serving: ``Subscriber.recommend`` latency over the whole catalogue vs bare numpy.

A ranking model with ``--items`` items and 64 factors (numpy item and user vectors, 20 seen
items per user, popularity for cold users) is published to an in-memory model store and
served by a :class:`~model_store.subscriber.Subscriber`; Redis only matters when a version
loads, not per request. Per repeat, ``--requests`` requests (random users, 10% cold) are
timed one by one, alternating in the same process between

- lifelong: ``Subscriber.recommend(user, k=10)`` (slot lookup, canary routing, the
  ItemScorer check, ``score_items``, seen mask, argpartition, sort, ids and floats out);
- baseline: ``scores = V @ u; scores[seen] = -inf; argpartition; sort`` on the same arrays;
- optionally (``--knobs``) lifelong with ``TopK(explore=0.1, diversity=0.5)``.

Printed per catalogue size: p50 and p99 in microseconds (median over repeats, with the
range), and the ratios lifelong / baseline on p50 and p99 (median and range over repeats).

    OPENBLAS_NUM_THREADS=1 python -m bench.recommend --items 10000,100000 --requests 500 \
        --repeat 5 --knobs

Pin BLAS to one thread on a shared host (as a serving process should): with numpy's
default thread pool on a busy 2-core machine one 10k x 64 product took ~12 ms instead of
~0.5 ms, for both sides alike.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from prometheus_client import CollectorRegistry

from model_store import Registry, Signer, TopK
from model_store.subscriber import Subscriber

K = 10
FACTORS = 64
USERS = 1000
SEEN = 20


class BenchScorer:
    """Item vectors x user vectors (an ItemScorer), popularity for unknown users."""

    def __init__(self, n_items: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.ids = [f"i{n}" for n in range(n_items)]
        self.vectors = rng.normal(size=(n_items, FACTORS))
        self.users = {f"u{n}": rng.normal(size=FACTORS) for n in range(USERS)}
        self.seen = {u: rng.choice(n_items, SEEN, replace=False).astype(np.int64)
                     for u in self.users}
        self.popularity = rng.random(n_items)

    def item_ids(self) -> list[str]:
        return self.ids

    def score_items(self, user: str) -> np.ndarray:
        vec = self.users.get(user)
        return self.popularity.copy() if vec is None else self.vectors @ vec

    def seen_items(self, user: str) -> np.ndarray:
        return self.seen.get(user, np.empty(0, dtype=np.int64))

    def item_vectors(self) -> np.ndarray | None:
        return self.vectors


def baseline(model: BenchScorer, user: str) -> list[tuple[str, float]]:
    vec = model.users.get(user)
    scores = model.popularity.copy() if vec is None else model.vectors @ vec
    seen = model.seen.get(user)
    if seen is not None:
        scores[seen] = -np.inf
    top = np.argpartition(-scores, K - 1)[:K]
    top = top[np.argsort(-scores[top])]
    return [(model.ids[r], float(scores[r])) for r in top]


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q))


def bench_size(n_items: int, requests: int, repeat: int, knobs: bool,
               seed: int) -> dict[str, list[tuple[float, float]]]:
    """Per variant, one (p50, p99) in seconds per repeat."""
    model = BenchScorer(n_items, seed)
    registry = Registry.from_url("memory://", signer=Signer(b"bench-recommend-key-0123456789"))
    registry.publish_object("rank", model)
    plain = Subscriber(registry, "rank", metrics_registry=CollectorRegistry()).start()
    tuned = Subscriber(registry, "rank", metrics_registry=CollectorRegistry(),
                       topk=TopK(explore=0.1, diversity=0.5, seed=seed)).start()
    variants = {"lifelong": plain.recommend, "baseline": lambda u, k: baseline(model, u)}
    if knobs:
        variants["knobs"] = tuned.recommend
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    try:
        for r in range(repeat + 1):  # the first round warms caches and is dropped
            users = [f"u{n}" if n < USERS else f"cold{n}"
                     for n in rng.integers(0, int(USERS * 1.1), requests).tolist()]
            times: dict[str, list[float]] = {name: [] for name in variants}
            for user in users:
                for name, call in variants.items():  # interleaved, same user
                    start = time.perf_counter()
                    got = call(user, K)
                    times[name].append(time.perf_counter() - start)
                    assert len(got) == K
            if r:
                for name, t in times.items():
                    out[name].append((pct(t, 50), pct(t, 99)))
    finally:
        plain.stop()
        tuned.stop()
    return out


def spread(values: list[float], scale: float = 1.0, fmt: str = ".0f") -> str:
    v = [x * scale for x in values]
    return f"{np.median(v):{fmt}} [{min(v):{fmt}}-{max(v):{fmt}}]"


def main(argv: list[str] | None = None) -> dict[int, dict[str, list[tuple[float, float]]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="10000,100000", help="catalogue sizes")
    parser.add_argument("--requests", type=int, default=500, help="timed requests a repeat")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--knobs", action="store_true",
                        help="also time TopK(explore=0.1, diversity=0.5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results: dict[int, dict[str, list[tuple[float, float]]]] = {}
    print(f"Subscriber.recommend(k={K}) vs bare numpy (V @ u, argpartition), {FACTORS} "
          f"factors, {args.requests} requests x {args.repeat} repeats; microseconds, "
          "median [range] over repeats")
    print(f"{'items':>7} {'variant':>9} {'p50 us':>16} {'p99 us':>16} {'p50 ratio':>18} "
          f"{'p99 ratio':>18}")
    for n_items in (int(s) for s in args.items.split(",")):
        res = bench_size(n_items, args.requests, args.repeat, args.knobs, args.seed)
        results[n_items] = res
        base = res["baseline"]
        for name, runs in res.items():
            p50 = [p for p, _ in runs]
            p99 = [q for _, q in runs]
            r50 = [p / b[0] for (p, _), b in zip(runs, base, strict=True)]
            r99 = [q / b[1] for (_, q), b in zip(runs, base, strict=True)]
            print(f"{n_items:>7} {name:>9} {spread(p50, 1e6):>16} {spread(p99, 1e6):>16} "
                  f"{spread(r50, fmt='.2f'):>18} {spread(r99, fmt='.2f'):>18}")
    return results


if __name__ == "__main__":
    main()
