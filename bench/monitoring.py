"""Cost of the ops hooks: the learner worker with input drift and freshness vs without.

Both runs are the production worker path (decode, validate, learn, Prometheus metrics) on
the same events, interleaved in this process; the watched run adds the per-event input
drift observe (a few array writes, two CRC32s, tests once a window) and the freshness
histogram. Events per CPU-second (``time.process_time``), median and range of the repeats.

    python -m bench.monitoring --events 30000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import time

from prometheus_client import CollectorRegistry

from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from monitoring.drift_metrics import DriftMetrics
from monitoring.freshness import FreshnessMetrics, LearnerFreshness
from monitoring.input_drift import InputDriftWatch
from monitoring.metrics import LearnerMetrics
from stream.schema import encode
from stream.source import ListDeadLetters, ListSource
from stream.synthetic import SyntheticStream


def run(raw: list[bytes], watched: bool) -> float:
    """Events per CPU-second of one worker run."""
    reg = CollectorRegistry()
    learner = OnlineLearner("BiasedMF")
    hooks = {}
    if watched:
        hooks = {"input_drift": InputDriftWatch.for_learner(
                     learner, "b", metrics=DriftMetrics(reg, model="b")),
                 "freshness": LearnerFreshness.for_learner(
                     learner, FreshnessMetrics(reg, model="b"))}
    worker = LearnerWorker(ListSource(raw, batch_size=500), learner, ListDeadLetters(),
                           metrics=LearnerMetrics(reg, model="b", topic="t"), **hooks)
    start = time.process_time()
    worker.run()
    return len(raw) / (time.process_time() - start)


def main(argv: list[str] | None = None) -> float:
    """Print both throughputs and their ratio; return the median ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    raw = [encode(e) for e in SyntheticStream(n_events=args.events, drift_at=(args.events // 2,),
                                              seed=1)]
    bare, watched = [], []
    for _ in range(args.repeat):  # interleaved: the machine's load hits both alike
        bare.append(run(raw, False))
        watched.append(run(raw, True))
    ratios = [w / b for w, b in zip(watched, bare, strict=True)]
    print(f"ops hooks, {args.events} events, {args.repeat} interleaved repeats "
          "(events per CPU-second: median [min, max])")
    print(f"  worker               {statistics.median(bare):>9.0f} "
          f"[{min(bare):.0f}, {max(bare):.0f}]")
    print(f"  + input drift, fresh {statistics.median(watched):>9.0f} "
          f"[{min(watched):.0f}, {max(watched):.0f}]")
    print(f"  ratio (watched / worker) = {statistics.median(ratios):.3f} "
          f"[{min(ratios):.3f}, {max(ratios):.3f}]")
    return statistics.median(ratios)


if __name__ == "__main__":
    main()
