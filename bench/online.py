"""Online learner overhead: the full worker path vs a bare River loop on the same events.

The worker path decodes and validates JSON, drops duplicates, predicts, scores, learns and
updates Prometheus metrics; the baseline calls River's ``predict_one``/``learn_one`` on
pre-parsed tuples. Both use the same model and the same events, in this process.

    python -m bench.online --events 50000
"""

from __future__ import annotations

import argparse
import time

from prometheus_client import CollectorRegistry
from river import optim, reco

from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from monitoring.metrics import LearnerMetrics
from stream.schema import encode
from stream.source import ListDeadLetters, ListSource
from stream.synthetic import SyntheticStream


def bare_river(events: list) -> float:
    model = reco.BiasedMF(
        n_factors=10, bias_optimizer=optim.SGD(0.025), latent_optimizer=optim.SGD(0.05),
        latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=42), seed=42)
    rows = [(e.user_id, e.item_id, e.value) for e in events]
    start = time.perf_counter()
    for user, item, y in rows:
        model.predict_one(user, item)
        model.learn_one(user, item, y)
    return time.perf_counter() - start


def worker_path(raw: list[bytes]) -> float:
    reg = CollectorRegistry()
    worker = LearnerWorker(ListSource(raw, batch_size=500), OnlineLearner("BiasedMF"),
                           ListDeadLetters(), metrics=LearnerMetrics(reg, model="b", topic="t"))
    start = time.perf_counter()
    worker.run()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    events = list(SyntheticStream(n_events=args.events, drift_at=(args.events // 2,), seed=1))
    raw = [encode(e) for e in events]
    base = min(bare_river(events) for _ in range(args.repeat))
    full = min(worker_path(raw) for _ in range(args.repeat))
    ratio = base / full
    print(f"online learner, {args.events} events, best of {args.repeat}")
    print(f"  bare River loop   {args.events / base:>10.0f} events/s")
    print(f"  lifelong worker   {args.events / full:>10.0f} events/s")
    print(f"  ratio (worker / bare throughput) = {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
