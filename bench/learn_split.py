"""Where `learn`'s CPU goes, per event: poll, process, publish, GC, against the kafka loop.

Three runs over the same topic of ``--events`` synthetic events on the real Kafka, each
``--repeat`` times, interleaved: the real ``learn`` (``build_online_run``, defaults) with
``source.poll``, ``worker.process`` and ``worker.publish`` wrapped in ``process_time``
(no profiler: a profiler's per-call cost is most of what it would show); the same worker
fed the very batches that run polled, replayed from memory (``BatchSource``: what
``process`` costs without Kafka in the process); and the hand-written kafka-python loop of
:mod:`bench.learn`, split into its poll and its loop. Garbage-collector time is counted
apart (``gc.callbacks``; it lands inside the other steps). Prints microseconds of CPU an
event, median [range]::

    python -m bench.learn_split --events 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench import learn as bench_learn

_GC = {"start": 0.0, "seconds": 0.0}


def _gc_clock(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _GC["start"] = time.process_time()
    else:
        _GC["seconds"] += time.process_time() - _GC["start"]


def _timed(fn: Callable[..., Any], into: dict[str, float], key: str) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            into[key] += time.process_time() - start
    return wrapped


def learn_split(topic: str, prefix: str, n: int, replay: list[list[Any]] | None = None,
                keep: list[list[Any]] | None = None) -> dict[str, float]:
    """The real ``learn``'s split; ``replay``: feed these batches instead of Kafka's."""
    from lifelong.config import Settings
    from lifelong.wiring import build_online_run
    from stream.source import BatchSource

    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_env(topic=topic, dlq_topic=f"{topic}.dlq", prefix=prefix,
                                 group_id=f"bench-split-{tag}", model=f"bench-{tag}")
    run = build_online_run(settings, register_target=False, resume=False)
    worker = run.worker
    if replay is not None:
        worker.source.close()
        worker.source = BatchSource([list(b) for b in replay])
    spent = {"poll": 0.0, "process": 0.0, "publish": 0.0}
    poll = _timed(worker.source.poll, spent, "poll")

    def polled(*args: Any, **kwargs: Any) -> Any:
        records = poll(*args, **kwargs)
        if keep is not None and records:
            keep.append(records)
        return records

    worker.source.poll = polled  # type: ignore[method-assign]
    worker.process = _timed(worker.process, spent, "process")  # type: ignore[method-assign]
    worker.publish = _timed(worker.publish, spent, "publish")  # type: ignore[method-assign]
    gc.collect()
    _GC["seconds"], start = 0.0, time.process_time()
    try:
        stats = worker.run(max_events=n, idle_timeout=60)
    finally:
        total = time.process_time() - start
        run.close()
    return {k: v / stats.consumed * 1e6 for k, v in spent.items()} | {
        "gc": _GC["seconds"] / stats.consumed * 1e6, "total": total / stats.consumed * 1e6}


def kafka_split(bootstrap: str, topic: str, n: int) -> dict[str, float]:
    """:func:`bench.learn.bare_kafka`, its ``poll`` and its loop timed apart."""
    from kafka import KafkaConsumer

    model = bench_learn._river()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap,
                             group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_records=500)
    seen, spent, deadline = 0, {"poll": 0.0, "loop": 0.0}, time.monotonic() + 600
    gc.collect()
    _GC["seconds"], start = 0.0, time.process_time()
    try:
        while seen < n and time.monotonic() < deadline:
            at = time.process_time()
            batches = consumer.poll(timeout_ms=1000)
            mid = time.process_time()
            for records in batches.values():
                for record in records:
                    e = json.loads(record.value)
                    model.predict_one(e["user_id"], e["item_id"])
                    model.learn_one(e["user_id"], e["item_id"], e["value"])
                    seen += 1
            spent["poll"] += mid - at
            spent["loop"] += time.process_time() - mid
        consumer.commit()
    finally:
        total = time.process_time() - start
        consumer.close()
    return {k: v / seen * 1e6 for k, v in spent.items()} | {
        "gc": _GC["seconds"] / seen * 1e6, "total": total / seen * 1e6}


def _line(name: str, runs: list[dict[str, float]]) -> str:
    keys = list(runs[0])
    parts = [f"{k} {statistics.median(r[k] for r in runs):.2f} "
             f"[{min(r[k] for r in runs):.2f}-{max(r[k] for r in runs):.2f}]" for k in keys]
    return f"  {name:<22} " + ", ".join(parts)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ or "REDIS_URL" not in os.environ:
        raise SystemExit("bench.learn_split needs the services: source .cache/services/env")
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    import lifelong.wiring  # noqa: F401  imports are start-up, not per-event cost

    tag = uuid.uuid4().hex[:8]
    topic, prefix = f"bench-split-{tag}", f"bench-{tag}"
    out: dict[str, list[dict[str, float]]] = {"learn": [], "replayed": [], "kafka": [],
                                              "memory": []}
    load = os.getloadavg()
    gc.callbacks.append(_gc_clock)
    try:
        payloads = bench_learn._produce(bootstrap, topic, args.events, seed=1)
        for _ in range(args.repeat):
            batches: list[list[Any]] = []
            out["learn"].append(learn_split(topic, prefix, args.events, keep=batches))
            out["replayed"].append(learn_split(topic, prefix, args.events, replay=batches))
            del batches
            out["kafka"].append(kafka_split(bootstrap, topic, args.events))
            gc.collect()
            memory = bench_learn._timed(lambda: bench_learn.bare_memory(payloads))
            out["memory"].append({"total": 1e6 / memory["eps_cpu"]})
    finally:
        gc.callbacks.remove(_gc_clock)
        bench_learn._cleanup(bootstrap, topic, prefix)
    print(f"us of CPU an event, {args.events} events, {args.repeat} repeats, median [range];"
          f" load {load[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    for name, label in (("learn", "learn (Kafka)"), ("replayed", "learn (same batches)"),
                        ("kafka", "kafka-python loop"), ("memory", "bare json + River")):
        print(_line(label, out[name]))
    return out


if __name__ == "__main__":
    main()
