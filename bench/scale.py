"""Scale-out by consumer-group shards: throughput of 2 learner processes vs 1, and quality.

Rows:

* ``throughput``: the real sharded learner (:func:`lifelong.shard_wiring.build_sharded_run`:
  ``KafkaSource`` in a consumer group, Kafka dead letters, one ``LearnerWorker`` and one
  version chain ``<model>.p<k>`` per partition published to the real Redis, /metrics) in
  ``1`` and in ``2`` processes of one group on a ``--partitions`` (4) topic holding the same
  events (produced once beforehand), each variant with a fresh group and store prefix;
  the variants alternate, ``--repeat`` times. The processes are started, build everything,
  then wait at a barrier and start polling together; a run's events/s is the number of
  events over the wall time from the first record learned by any process to the last one
  (joining the group and the rebalances it causes count, start-up imports do not; the
  processes are stopped once the events are all learned, so no member leaves before). Each
  process starts in its own session, as separately deployed learners are: with Linux's
  autogroup scheduling the processes of one session share one CPU share, so on a machine
  loaded by others two processes of one session get no more CPU than one
  (``--same-session`` measures that case). The
  ratio 2 processes / 1 process is printed per repeat, median [range]; the CPU-seconds the
  processes spent are printed beside it. Quality gates are off in both (heavy MovieTweetings
  users rate many items in one second).
* ``quality``: prequential RMSE (predict, score, learn; time order; from scratch) of one
  global River ``BiasedMF`` over every event against the same learner sharded by the
  producer's partitioner (one learner per partition, each seeing only its users' events;
  the pooled RMSE over all events): what not sharing item-side state costs. Deterministic,
  so one run.

Events: MovieTweetings 100k (``$LIFELONG_MOVIETWEETINGS`` or
``../shared/data/movietweetings-100k/ratings.dat``, time-sorted, clip 0..10) when present,
else (said so) the synthetic stream (clip 1..5). Needs the services for the throughput row
(``source .cache/services/env``) and a signing key. Results go to
``bench/results/scale-<label>.json``::

    python -m bench.scale --repeat 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import commit, drop_prefix, summary

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
REAL = Path(os.environ.get("LIFELONG_MOVIETWEETINGS",
                           ROOT.parent / "shared/data/movietweetings-100k/ratings.dat"))


def load_events(path: Path, synthetic: int) -> tuple[str, list[Any], tuple[float, float]]:
    """(name, events in time order, clip): MovieTweetings if present, else synthetic."""
    from stream.schema import Event
    from stream.synthetic import SyntheticStream

    if path.exists():
        rows = [line.rstrip("\n").split("::") for line in path.open() if line.strip()]
        rows.sort(key=lambda r: float(r[3]))  # stable: time order
        return ("MovieTweetings",
                [Event(f"mt-{n}", r[0], r[1], "rating", float(r[2]), float(r[3]))
                 for n, r in enumerate(rows)], (0.0, 10.0))
    print(f"MovieTweetings absent ({path}): set LIFELONG_MOVIETWEETINGS; synthetic stream only")
    return ("synthetic", list(SyntheticStream(n_events=synthetic, seed=3)),
            (1.0, 5.0))


def _average_items(shards: list[Any], counts: list[dict[str, int]]) -> None:
    """Set every shard's item biases and factors to their count-weighted mean over shards."""
    items = set().union(*counts)
    models = [s.model._model for s in shards]
    for item in items:
        weights = [c.get(item, 0) for c in counts]
        total = sum(weights)
        bias = sum(w * m.i_biases[item] for w, m in zip(weights, models, strict=True)
                   if w) / total
        latent = sum(w * m.i_latents[item] for w, m in zip(weights, models, strict=True)
                     if w) / total
        for m in models:
            m.i_biases[item] = bias
            m.i_latents[item] = latent.copy()


def _sharded_run(events: list[Any], clip: tuple[float, float], partitions: int, *,
                 every: int = 0, mode: str = "none") -> dict[str, Any]:
    """Prequential figures of one learner per partition.

    ``mode``: ``none`` (no item side), ``average`` (every ``every`` events the item biases
    and factors are replaced by their count-weighted mean: the earlier simulation), or
    ``exchange`` / ``exchange+factors``: what ``learn --sharded`` runs after every batch,
    :meth:`consumers.item_exchange.ItemExchange.maybe_exchange` over an in-memory store,
    with ``every_events=every``: every ``every`` events *of its own*, a shard publishes its
    item deltas and merges the others'.
    """
    from consumers.item_exchange import ItemExchange
    from learning.online import OnlineLearner
    from model_store.registry import Registry
    from model_store.router import partition_for

    shards = [OnlineLearner(clip=clip) for _ in range(partitions)]
    counts: list[dict[str, int]] = [{} for _ in range(partitions)]
    store = Registry.from_url("memory://", signer=None)
    exchanges = [ItemExchange(store, "bench", k, partitions, factors=mode.endswith("factors"),
                              every_events=every) for k in range(partitions)]
    for n, e in enumerate(events, 1):
        k = partition_for(e.user_id, partitions)
        shards[k].learn_one(e)
        counts[k][e.item_id] = counts[k].get(e.item_id, 0) + 1
        if mode.startswith("exchange"):
            exchanges[k].maybe_exchange(shards[k])
        elif mode == "average" and n % every == 0:
            _average_items(shards, counts)
    scores = [s.score() for s in shards]
    total = sum(s.n for s in scores)
    rmse = math.sqrt(sum(s.n * s.rmse ** 2 for s in scores) / total)
    return {"rmse": rmse, "mae": sum(s.n * s.mae for s in scores) / total,
            "per_shard": [{"n": s.n, "rmse": s.rmse} for s in scores],
            "exchange_failures": sum(ex.failures for ex in exchanges)}


def quality(events: list[Any], clip: tuple[float, float], partitions: int,
            sync_every: tuple[int, ...] = (), modes: tuple[str, ...] = ("exchange",)
            ) -> dict[str, Any]:
    """Prequential RMSE/MAE of one global learner and of one learner per partition.

    Each ``sync_every`` K and each of ``modes`` adds a sharded run with that item side
    (see :func:`_sharded_run`), under ``item_side[mode][K]``.
    """
    from learning.online import OnlineLearner

    started = time.process_time()
    whole = OnlineLearner(clip=clip)
    for e in events:
        whole.learn_one(e)
    g = whole.score()
    out: dict[str, Any] = {"global_rmse": g.rmse, "global_mae": g.mae}
    row = _sharded_run(events, clip, partitions)
    out.update(sharded_rmse=row["rmse"], rmse_ratio=row["rmse"] / g.rmse,
               sharded_mae=row["mae"], per_shard=row["per_shard"])
    for mode in modes:
        for every in sync_every:
            row = _sharded_run(events, clip, partitions, every=every, mode=mode)
            row["rmse_ratio"] = row["rmse"] / g.rmse
            out.setdefault("item_side", {}).setdefault(mode, {})[str(every)] = row
    out["cpu_s"] = time.process_time() - started
    return out


# throughput ------------------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    """One learner process: build, wait at the barrier, learn until told to stop, report."""
    import signal
    import threading

    from lifelong.config import Settings
    from lifelong.shard_wiring import build_sharded_run

    settings = Settings.from_env()
    run = build_sharded_run(settings, register_target=False,
                            clip=tuple(args.clip) if args.clip else None)
    assigned: list[tuple[float, list[int]]] = []  # when each (re)assignment came, and what
    on_assign = run.source.on_assign

    def assign(parts: list[tuple[str, int]]) -> None:
        if on_assign is not None:
            on_assign(parts)
        assigned.append((time.time(), sorted(run.runner.shards)))

    run.source.on_assign = assign
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    progress = Path(args.out + ".progress")
    Path(args.out + ".ready").touch()
    deadline = time.monotonic() + 120
    while not Path(args.go).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    marks: dict[str, float] = {}
    last = {"learned": 0}
    timeline: list[tuple[float, int, float]] = []  # (time, events learned, CPU-s) per batch

    def mark(stats: Any) -> None:
        if stats.learned > last["learned"]:
            now = time.time()
            marks.setdefault("first", now)
            marks["last"] = now
            last["learned"] = stats.learned
            timeline.append((now, stats.learned, time.process_time() - cpu))
            progress.write_text(str(stats.learned))

    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile(time.thread_time)  # this thread's CPU, not wall
        profile.enable()
    cpu = time.process_time()
    try:
        stats = run.runner.run(stop=stop, idle_timeout=args.idle, on_batch=mark)
    finally:
        run.close()
    cpu_s = time.process_time() - cpu
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.out + ".prof")
    Path(args.out).write_text(json.dumps({
        "consumed": stats.consumed, "learned": stats.learned, "versions": len(stats.versions),
        "first": marks.get("first"), "last": marks.get("last"), "cpu_s": cpu_s,
        "rebalances": run.runner.rebalances, "assigned": assigned, "timeline": timeline}))


def _env(topic: str, group: str, prefix: str, partitions: int) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LIFELONG_TOPIC": topic,
           "LIFELONG_GROUP_ID": group, "LIFELONG_PREFIX": prefix,
           "LIFELONG_DLQ_TOPIC": f"{topic}.dlq", "LIFELONG_QUARANTINE_TOPIC": f"{topic}.q",
           "LIFELONG_PARTITIONS": str(partitions), "LIFELONG_QUALITY": "off",
           "LIFELONG_METRICS_PORT": "0"}
    for name in ("LIFELONG_PSEUDONYM_KEY", "LIFELONG_PSEUDONYM_KEY_FILE",
                 "LIFELONG_ERASURE_TOPIC"):
        env.pop(name, None)
    return env


def services_cpu() -> dict[str, float]:
    """CPU-seconds so far of this machine's Redis server and Kafka broker (from /proc).

    Shared with whoever else uses them: a figure for a quiet machine. Empty off Linux.
    """
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = ("redis" if b"redis-server" in cmd else
                "kafka" if b"kafka.Kafka" in cmd else None)
        if name:
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def steady(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures from the moment every process holds its final assignment to the last event.

    That moment is the latest final ``on_assign`` of the processes; events and CPU-seconds
    are counted from each process's last batch before it (the events learned before it are
    left out, so these are not the same events as the whole run's).

    >>> steady([{"assigned": [[1.0, [0]], [2.0, [0, 1]]], "first": 1.5, "last": 6.0,
    ...          "timeline": [[1.5, 100, 0.1], [3.0, 300, 0.3], [6.0, 900, 0.9]]}])
    {'since': 2.0, 'events': 800, 'wall_s': 4.0, 'eps_wall': 200.0, 'cpu_s': 0.8, 'eps_cpu': 1000.0}
    """
    since = max(r["assigned"][-1][0] for r in reports if r["assigned"])
    events = cpu = 0.0
    for r in reports:
        before = [(n, c) for t, n, c in r["timeline"] if t <= since]
        n0, c0 = before[-1] if before else (0, 0.0)
        n1, c1 = (r["timeline"][-1][1], r["timeline"][-1][2]) if r["timeline"] else (0, 0.0)
        events += n1 - n0
        cpu += c1 - c0
    last = max(r["last"] for r in reports if r["last"] is not None)
    first = min(r["first"] for r in reports if r["first"] is not None)
    since = max(since, first)
    wall = last - since
    return {"since": since, "events": int(events), "wall_s": wall,
            "eps_wall": events / wall if wall > 0 else float("nan"), "cpu_s": round(cpu, 6),
            "eps_cpu": events / cpu if cpu > 0 else float("nan")}


def variant(processes: int, topic: str, partitions: int, n: int, clip: tuple[float, float],
            work: Path, same_session: bool = False, profile: Path | None = None
            ) -> dict[str, Any]:
    """Run ``processes`` learners of one fresh group over the topic; their combined figures."""
    tag = uuid.uuid4().hex[:8]
    env = _env(topic, f"bench-scale-{tag}", f"bench-scale-{tag}", partitions)
    go = work / f"{tag}.go"
    outs = [work / f"{tag}-{k}.json" for k in range(processes)]
    procs = [subprocess.Popen([sys.executable, "-m", "bench.scale", "--child", "--out", str(o),
                               "--go", str(go), "--clip", str(clip[0]), str(clip[1]),
                               *(["--profile"] if profile else [])],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=open(str(o) + ".log", "wb"),  # noqa: SIM115
                              start_new_session=not same_session)
             for o in outs]
    deadline = time.monotonic() + 180
    while not all(Path(str(o) + ".ready").exists() for o in outs):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise SystemExit(f"a learner failed to start; see {outs[0]}.log")
        time.sleep(0.05)
    services_before = services_cpu()
    go.touch()
    # stop every process once all events are learned (a member leaving would rebalance)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and sum(
            int(Path(str(o) + ".progress").read_text() or 0)
            for o in outs if Path(str(o) + ".progress").exists()) < n:
        if all(p.poll() is not None for p in procs):
            break
        time.sleep(0.2)
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(120)
    services = {k: round(v - services_before.get(k, 0.0), 2) for k, v in services_cpu().items()}
    reports = [json.loads(o.read_text()) for o in outs]
    learned = sum(r["learned"] for r in reports)
    first = min(r["first"] for r in reports if r["first"] is not None)
    last = max(r["last"] for r in reports if r["last"] is not None)
    drop_prefix(env["LIFELONG_PREFIX"])
    if profile is not None:
        import shutil

        profile.mkdir(parents=True, exist_ok=True)
        for k, o in enumerate(outs):
            shutil.copy(str(o) + ".prof", profile / f"{processes}p-{tag}-{k}.prof")
    return {"processes": processes, "learned": learned, "wall_s": last - first,
            "eps_wall": learned / (last - first), "cpu_s": sum(r["cpu_s"] for r in reports),
            "eps_cpu": learned / sum(r["cpu_s"] for r in reports),
            "steady": steady(reports), "services_cpu_s": services, "reports": reports}



def _produce(bootstrap: str, topic: str, partitions: int, events: list[Any]) -> list[int]:
    from stream.admin import TopicSpec, ensure_topics
    from stream.producer import EventProducer

    ensure_topics(bootstrap, [TopicSpec(topic, partitions), TopicSpec(f"{topic}.dlq", 1),
                              TopicSpec(f"{topic}.q", 1)])
    with EventProducer(bootstrap, topic) as producer:
        for e in events:
            producer.send(e)
    from model_store.router import partition_for

    counts = [0] * partitions
    for e in events:
        counts[partition_for(e.user_id, partitions)] += 1
    return counts



def throughput(events: list[Any], clip: tuple[float, float], partitions: int,
               repeat: int, same_session: bool = False, profile: Path | None = None
               ) -> dict[str, Any]:
    """Interleaved runs of 1 and 2 processes over the same events; ratios per repeat."""
    import tempfile

    from stream.admin import delete_topics

    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"bench-scale-{uuid.uuid4().hex[:8]}"
    try:
        counts = _produce(bootstrap, topic, partitions, events)
        runs = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(repeat):
                order = [1, 2] if i % 2 == 0 else [2, 1]
                run: dict[Any, Any] = {k: variant(k, topic, partitions, len(events), clip,
                                                  Path(tmp), same_session, profile)
                                       for k in order}
                run["load_average"] = os.getloadavg()
                runs.append(run)
                print(f"  repeat {i + 1}: whole run 1 process {run[1]['eps_wall']:.0f} ev/s, "
                      f"2 processes {run[2]['eps_wall']:.0f} ev/s "
                      f"({run[2]['eps_wall'] / run[1]['eps_wall']:.2f}x); steady state "
                      f"{run[1]['steady']['eps_wall']:.0f} / {run[2]['steady']['eps_wall']:.0f}"
                      f" ev/s ({run[2]['steady']['eps_wall'] / run[1]['steady']['eps_wall']:.2f}"
                      f"x); Redis+Kafka CPU-s {sum(run[1]['services_cpu_s'].values()):.1f} / "
                      f"{sum(run[2]['services_cpu_s'].values()):.1f}; load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
    finally:
        delete_topics(bootstrap, [topic, f"{topic}.dlq", f"{topic}.q"])
    return {"partition_counts": counts, "runs": runs,
            "ratio_wall": summary([r[2]["eps_wall"] / r[1]["eps_wall"] for r in runs]),
            "ratio_cpu": summary([r[2]["eps_cpu"] / r[1]["eps_cpu"] for r in runs]),
            "services_cpu_s": {k: [r[k]["services_cpu_s"] for r in runs] for k in (1, 2)},
            "steady_ratio_wall": summary([r[2]["steady"]["eps_wall"] / r[1]["steady"]["eps_wall"]
                                          for r in runs]),
            "steady_ratio_cpu": summary([r[2]["steady"]["eps_cpu"] / r[1]["steady"]["eps_cpu"]
                                         for r in runs]),
            "one_steady_eps_wall": summary([r[1]["steady"]["eps_wall"] for r in runs]),
            "two_steady_eps_wall": summary([r[2]["steady"]["eps_wall"] for r in runs]),
            "two_steady_events": summary([r[2]["steady"]["events"] for r in runs]),
            "one_eps_wall": summary([r[1]["eps_wall"] for r in runs]),
            "two_eps_wall": summary([r[2]["eps_wall"] for r in runs])}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--events", type=int, default=None, help="first N events only")
    parser.add_argument("--synthetic-events", type=int, default=60_000)
    parser.add_argument("--data", type=Path, default=REAL)
    parser.add_argument("--label", default="latest")
    parser.add_argument("--sync-every", type=int, nargs="*", default=[50],
                        help="also run the sharded learners with an item side every K events "
                             "(of each shard for the exchange; of all for averaging)")
    parser.add_argument("--item-modes", nargs="*", default=["exchange", "exchange+factors"],
                        choices=["exchange", "exchange+factors", "average"],
                        help="item sides to measure (exchange: what learn --sharded does)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--profile-dir", type=Path, default=None,
                        help="cProfile every learner process; stats files go here")
    parser.add_argument("--same-session", action="store_true",
                        help="start the learners in this session (one CPU share between them "
                             "under Linux autogroup scheduling) instead of one session each")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--go", help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=float, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--idle", type=float, default=120.0, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return {}
    name, events, clip = load_events(args.data, args.synthetic_events)
    events = events[: args.events] if args.events else events
    result: dict[str, Any] = {
        "label": args.label, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "stream": name, "events": len(events), "partitions": args.partitions,
        "repeat": args.repeat, "load_average": os.getloadavg(), "commit": commit()}
    print(f"{name}, {len(events)} events, {args.partitions} partitions")
    if not args.skip_quality:
        q = quality(events, clip, args.partitions, tuple(args.sync_every),
                    tuple(args.item_modes))
        result["quality"] = q
        print("  prequential (time order, from scratch): RMSE global BiasedMF "
              f"{q['global_rmse']:.4f}, sharded {q['sharded_rmse']:.4f} = "
              f"{q['rmse_ratio']:.4f}x (MAE {q['global_mae']:.4f} / {q['sharded_mae']:.4f})")
        for mode, rows in q.get("item_side", {}).items():
            for every, row in rows.items():
                print(f"  sharded + item side {mode} every {every} events (in-process, same "
                      f"code): RMSE {row['rmse']:.4f} = {row['rmse_ratio']:.4f}x")
    if not args.skip_throughput:
        if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ or "REDIS_URL" not in os.environ:
            raise SystemExit("the throughput row needs the services: source .cache/services/env")
        t = throughput(events, clip, args.partitions, args.repeat, args.same_session,
                       args.profile_dir)
        result["throughput"] = t
        print(f"  events per partition {t['partition_counts']}")
        _print_ratio("whole run, same events (wall, first to last record learned; the "
                     "group join and rebalances count)", t["ratio_wall"], t["ratio_cpu"],
                     t["two_eps_wall"], t["one_eps_wall"])
        _print_ratio("steady state (from when every process holds its final assignment; "
                     "not the same events)", t["steady_ratio_wall"], t["steady_ratio_cpu"],
                     t["two_steady_eps_wall"], t["one_steady_eps_wall"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"scale-{args.label}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _print_ratio(what: str, wall: dict[str, Any], cpu: dict[str, Any], two: dict[str, Any],
                 one: dict[str, Any]) -> None:
    print(f"  2 processes / 1, {what}: events/s {wall['median']:.2f}x "
          f"[{wall['min']:.2f}-{wall['max']:.2f}] ({two['median']:.0f} vs {one['median']:.0f} "
          f"ev/s); events per CPU-s {cpu['median']:.2f}x [{cpu['min']:.2f}-{cpu['max']:.2f}]")



if __name__ == "__main__":
    main()
