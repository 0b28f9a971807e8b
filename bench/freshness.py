"""Freshness through the real path: an event produced -> visible to a subscriber.

This process produces synthetic events at a steady ``--rate`` (events/s) to a unique
one-partition topic on the real Kafka, recording each event's produce time. A child process
runs ``lifelong learn`` as :func:`lifelong.wiring.build_online_run` builds it (defaults:
delta publishing, ``LIFELONG_PUBLISH_*`` cadence and floor, retention). Here a
:class:`~model_store.subscriber.Subscriber` follows ``latest``; each swap records the time
and the version's ``offsets``. An event is visible from the first swap whose offsets cover
it (one partition, so offset ``N`` covers exactly events ``0..N-1``); its freshness is that
swap's time minus its produce time. The first ``--warmup`` seconds are left out ("once
caught up"). Reported per run: p50/p99/max over the events, the rate achieved, the
versions seen; median and range over ``--repeat`` runs. The baseline beside it: the same
produce -> consume path with no learner (a bare kafka-python consumer in the child: the
broker's own delay), so the ratio says what learning + publishing + loading add::

    python -m bench.freshness --rate 5000 --seconds 30 --repeat 3 --label run
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import commit, drop_prefix, summary

ROOT = Path(__file__).resolve().parents[1]
USER_SKEW = 0.5
RESULTS = ROOT / "bench" / "results"


def child_learner(topic: str, prefix: str, model: str, seconds: float) -> None:
    """``lifelong learn``'s run (``build_online_run``, defaults) for ``seconds``."""
    from lifelong.config import Settings
    from lifelong.wiring import build_online_run

    settings = Settings.from_env(topic=topic, dlq_topic=f"{topic}.dlq", prefix=prefix,
                                 group_id=f"{model}-g", model=model)
    run = build_online_run(settings, register_target=False, resume=False)
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    publisher = getattr(run.worker.publisher, "publisher", run.worker.publisher)
    try:
        stats = run.worker.run(stop=stop)
    finally:
        run.close()
    print(json.dumps({"consumed": stats.consumed, "learned": stats.learned,
                      "quarantined": stats.quarantined, "versions": len(stats.versions),
                      **{k: getattr(publisher, k, None) for k in (
                          "bases", "deltas", "forked_bases", "forked_failures")},
                      "publish": publish_split(stats, getattr(publisher, "timings", {}))}))


def publish_split(stats: Any, timings: dict[str, float]) -> dict[str, Any]:
    """Where the learner's time between versions goes, from its own clock.

    Per version: how long the publish took, how long the floor held it once due, and the
    time from one publish's start to the next's; the seconds of each step summed over the
    run (the worker's: finite check, checkpoint, publisher, Kafka commit; the publisher's
    split of its part: rows taken, worker state diffed, encoded, stored, in-line base, fork).
    """
    times = stats.publish_times
    if not times:
        return {}
    took = [t for _, t, _ in times]
    held = [h for _, _, h in times]
    starts = [s for s, _, _ in times]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    out: dict[str, Any] = {"n": len(times), "took": _percentiles(took),
                           "held": {**_percentiles(held), "total": sum(held)},
                           "steps_seconds": dict(stats.publish_steps),
                           "publisher_seconds": dict(timings), "elapsed": stats.elapsed,
                           "share": sum(took) / stats.elapsed if stats.elapsed else None}
    if gaps:
        out["start_to_start"] = _percentiles(gaps)
    return out


def child_bare(bootstrap: str, topic: str, seconds: float) -> None:
    """The baseline: consume and print (offset, receive time) for every record."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    seen: list[tuple[int, float]] = []
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            for records in consumer.poll(timeout_ms=200).values():
                now = time.time()
                seen.extend((r.offset, now) for r in records)
    finally:
        consumer.close()
    print(json.dumps({"seen": seen}))


def _produce(bootstrap: str, topic: str, rate: float, seconds: float,
             sent: list[float], users: int) -> None:
    from msgspec import structs

    from stream.producer import EventProducer
    from stream.synthetic import SyntheticStream

    # users drawn by 1 / rank ** 0.5 (USER_SKEW): the busiest of 1M users makes ~0.05% of
    # the events, under 3 a second at 5k/s. Zipf (skew 1) over 20,000 users, as before, made
    # the top two 477 and 236 events a second, which the default per-user rate gate
    # (600 a minute) rightly quarantines: 14,821 of 75,001 events (docs/benchmarks.md).
    events = iter(SyntheticStream(n_users=users, n_items=10_000, user_skew=USER_SKEW,
                                  n_events=int(rate * seconds) + 1, seed=7))
    with EventProducer(bootstrap, topic) as producer:
        start = time.time()
        for i, event in enumerate(events):
            due = start + i / rate
            wait = due - time.time()
            if wait > 0.002:
                time.sleep(wait)
            now = time.time()
            producer.send(structs.replace(event, ts=now))
            sent.append(now)
        producer.flush()


def freshness(sent: list[float], swaps: list[tuple[float, int]], warmup: float) -> list[float]:
    """Per event ``i`` produced at ``sent[i]``: the time of the first swap whose offset is past
    ``i``, minus ``sent[i]``; events in the first ``warmup`` seconds or never visible are left
    out.

    >>> freshness([0.0, 1.0, 2.0, 3.0], [(1.5, 1), (2.5, 1), (4.0, 3)], warmup=0.0)
    [1.5, 3.0, 2.0]
    """
    covered, times = [], []
    for at, offset in swaps:
        if not covered or offset > covered[-1]:
            covered.append(offset)
            times.append(at)
    out = []
    for i, t in enumerate(sent):
        k = bisect.bisect_right(covered, i)  # the first version covering event i
        if k < len(covered) and t - sent[0] >= warmup:
            out.append(times[k] - t)
    return out


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {"p50": q(0.50), "p99": q(0.99), "max": ordered[-1], "n": len(ordered)}


def one_run(bootstrap: str, rate: float, seconds: float, warmup: float,
            baseline: bool, users: int = 1_000_000) -> dict[str, Any]:
    from lifelong.config import Settings
    from lifelong.wiring import open_registry
    from model_store.subscriber import Subscriber
    from stream.admin import TopicSpec, delete_topics, ensure_topics

    tag = uuid.uuid4().hex[:8]
    topic, prefix, model = f"bench-fresh-{tag}", f"bench-fresh-{tag}", f"fresh-{tag}"
    ensure_topics(bootstrap, [TopicSpec(topic, 1), TopicSpec(f"{topic}.dlq", 1)])
    swaps: list[tuple[float, int]] = []
    created: list[float] = []  # each swap's version creation time (the publisher's clock)
    kinds: list[str] = []  # each swap's version: "delta", "base" (in line), "forked" (a child's)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kind = "bare" if baseline else "learner"
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.freshness", "--child", kind, "--topic", topic,
         "--prefix", prefix, "--model", model, f"--seconds={seconds + 8}"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sub = None
    try:
        if not baseline:
            def on_swap(alias: str, version: Any) -> None:
                swaps.append((time.time(), int(version.offsets.get(f"{topic}:0", 0))))
                created.append(version.created)
                kinds.append("delta" if version.format == "river-delta" else
                              "forked" if "rebase_of" in version.extra else "base")

            sub = Subscriber(open_registry(Settings.from_env(prefix=prefix)), model,
                             on_swap=on_swap, poll_interval=0.2).start()
        time.sleep(5)  # the child's imports and group join, before the clock starts
        sent: list[float] = []
        _produce(bootstrap, topic, rate, seconds, sent, users)
        out, err = child.communicate(timeout=seconds + 120)
        if child.returncode != 0:
            raise RuntimeError(f"child {kind} failed: {err[-2000:]}")
        if baseline:
            seen = sorted(json.loads(out.strip().splitlines()[-1])["seen"])
            visible = {offset: at for offset, at in seen}
            fresh = [visible[i] - t for i, t in enumerate(sent)
                     if i in visible and t - sent[0] >= warmup]
        else:
            fresh = freshness(sent, swaps, warmup)
        achieved = (len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 else 0.0
        out_run = {**_percentiles(fresh), "produced": len(sent), "rate": achieved,
                   "versions": len(swaps), "child": out.strip().splitlines()[-1][:200]
                   if not baseline else ""}
        if not baseline:
            out_run["publish"] = json.loads(out.strip().splitlines()[-1]).get("publish", {})
        if not baseline and swaps:  # where the time goes: between versions, store -> here
            start = sent[0] + warmup
            late = [(at, c) for (at, _), c in zip(swaps, created, strict=True) if at >= start]
            window = [k for (at, _), k in zip(swaps, kinds, strict=True) if at >= start]
            out_run["bases_in_window"] = {k: window.count(k) for k in ("base", "forked")}
            gaps = [b[0] - a[0] for a, b in itertools.pairwise(late)]
            out_run["gap_between_versions"] = _percentiles(gaps) if gaps else {}
            out_run["created_to_visible"] = _percentiles([at - c for at, c in late]) \
                if late else {}
        return out_run
    finally:
        if child.poll() is None:
            child.kill()
        if sub is not None:
            sub.stop()
        delete_topics(bootstrap, [topic, f"{topic}.dlq"])
        drop_prefix(prefix)




def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--label", default="run")
    parser.add_argument("--users", type=int, default=1_000_000,
                        help="users drawn by 1/rank**0.5 (the busiest makes ~0.05%% at 1M)")
    parser.add_argument("--child", choices=("learner", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ or "REDIS_URL" not in os.environ:
        raise SystemExit("bench.freshness needs the services: source .cache/services/env")
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    if args.child == "learner":
        child_learner(args.topic, args.prefix, args.model, args.seconds)
        return {}
    if args.child == "bare":
        child_bare(bootstrap, args.topic, args.seconds)
        return {}
    result: dict[str, Any] = {
        "label": args.label, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rate": args.rate, "seconds": args.seconds, "warmup": args.warmup,
        "repeat": args.repeat, "python": platform.python_version(), "users": args.users,
        "user_skew": USER_SKEW, "load_average": os.getloadavg(), "commit": commit(),
        "settings": {k: os.environ.get(k, "default") for k in (
            "LIFELONG_PUBLISH_EVERY_SECONDS", "LIFELONG_PUBLISH_EVERY_EVENTS",
            "LIFELONG_PUBLISH_MAX_SHARE", "LIFELONG_BASE_WRITER")}, "runs": []}
    for i in range(args.repeat):
        order = [False, True] if i % 2 == 0 else [True, False]
        result["runs"].append({("bare" if b else "learn"): one_run(
            bootstrap, args.rate, args.seconds, args.warmup, b, args.users) for b in order})
    result["load_average_end"] = os.getloadavg()
    for kind in ("learn", "bare"):
        runs = [r[kind] for r in result["runs"]]
        result[kind] = {k: summary([r[k] for r in runs]) for k in ("p50", "p99", "max", "rate")}
    print(f"freshness (produced -> visible), target rate {args.rate:.0f}/s, {args.seconds:.0f} s "
          f"a run, first {args.warmup:.0f} s left out, {args.repeat} runs (median [range])")
    for key in ("gap_between_versions", "created_to_visible"):
        got = [r["learn"][key] for r in result["runs"] if r["learn"].get(key)]
        if got:
            result["learn"][key] = {k: summary([g[k] for g in got]) for k in ("p50", "p99")}
            print(f"  {key:<22} p50 {result['learn'][key]['p50']['median']:.3f} s  "
                  f"p99 {result['learn'][key]['p99']['median']:.3f} s (medians over runs)")
    for run in result["runs"]:
        pub = run["learn"].get("publish") or {}
        if pub:
            print(f"  publish took p50 {pub['took']['p50']:.3f} s max {pub['took']['max']:.3f}"
                  f" s, held by the floor max {pub['held']['max']:.3f} s, share "
                  f"{pub['share']:.3f}; steps " + " ".join(
                      f"{k} {v:.2f}" for k, v in {**pub["steps_seconds"],
                                                  **pub["publisher_seconds"]}.items()))
    for kind, name in (("learn", "learn -> subscriber"), ("bare", "bare consumer")):
        r = result[kind]
        print(f"  {name:<20} p50 {r['p50']['median']:.3f} s [{r['p50']['min']:.3f}-"
              f"{r['p50']['max']:.3f}]  p99 {r['p99']['median']:.3f} s [{r['p99']['min']:.3f}-"
              f"{r['p99']['max']:.3f}]  rate {r['rate']['median']:.0f}/s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"freshness-{args.label}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result



if __name__ == "__main__":
    main()
