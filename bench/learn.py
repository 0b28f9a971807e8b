"""What `lifelong learn` and `lifelong evaluate` cost, measured on the real path.

Rows (each a ratio against a bare loop interleaved in this process, ``--repeat`` times,
median and range over the repeats; events per CPU-second, ``time.process_time``, are the
steady figure on a shared machine, wall time is printed beside it):

* ``learn``: :func:`lifelong.wiring.build_online_run` with its defaults (real
  ``KafkaSource``, Kafka dead letters, ``ErrorDrift``, ``RegistryPublisher`` to the real
  Redis, Prometheus metrics served on /metrics) consuming ``--events`` synthetic events
  produced beforehand to a unique topic on the real Kafka, against (a) ``json.loads`` +
  River ``BiasedMF`` predict/learn over the same payloads already in memory and (b) a
  hand-written kafka-python consumer + ``json.loads`` + River over the same topic.
* ``learn --blend-with`` (``--blend``): the same ``build_online_run`` with
  ``blend_with`` a deep model published and promoted beforehand under the run's prefix
  (trained on the first half of the topic's events, as the fine-tune worker would), against
  ``learn`` alone on the same topic, interleaved (target >= 0.75x).
* ``evaluate``: ``python -m lifelong evaluate`` as a whole process (CPU from
  ``RUSAGE_CHILDREN``) on a ``--eval-rows`` synthetic csv file, against reading, splitting
  and learning the same file in a bare loop.
  Beside it, in this process: the ``evaluate_file`` loop (rows validated by
  ``from_fields``, no JSON round trip) and the same loop with ``decoded=False`` (the
  CSV -> JSON -> decode path it replaced) against the bare loop, per CPU-second.
  ``--only-evaluate`` runs only these rows and needs no services.
* start-up: wall time of ``lifelong learn --help`` and of ``import consumers.worker`` in a
  fresh interpreter, and whether torch got imported; a River-only ``learn``
  (``build_online_run``, defaults, real Kafka and Redis) in a fresh interpreter to its first
  event learned, from the spawn and from the end of its imports (``--only-startup``).

Needs the services (``source .cache/services/env``) and a signing key. Results are saved as
JSON under ``bench/results/``::

    python -m bench.learn --events 30000 --repeat 3 --label before
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import commit, drop_prefix, summary

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _river() -> Any:
    """The River model ``OnlineLearner("BiasedMF")`` wraps, with the same parameters."""
    from river import optim, reco

    return reco.BiasedMF(
        n_factors=10, bias_optimizer=optim.SGD(0.025), latent_optimizer=optim.SGD(0.05),
        latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=42),
        l2_bias=0.0, l2_latent=0.0, seed=42)


def _timed(fn: Callable[[], int]) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    n = fn()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"events": n, "cpu_s": cpu, "wall_s": wall, "eps_cpu": n / cpu, "eps_wall": n / wall}


def bare_memory(payloads: list[bytes]) -> int:
    """Baseline (a): ``json.loads`` + River predict/learn over payloads already in memory."""
    model = _river()
    for raw in payloads:
        e = json.loads(raw)
        model.predict_one(e["user_id"], e["item_id"])
        model.learn_one(e["user_id"], e["item_id"], e["value"])
    return len(payloads)


# what baseline (b) uses, printed with its row: kafka-python's defaults, a plain poll loop
KAFKA_BASELINE = ("kafka-python defaults (max_poll_records=500, fetch_min_bytes=1, "
                  "fetch_max_wait_ms=500, max_partition_fetch_bytes=1 MiB), "
                  "poll(timeout_ms=1000) loop")


def bare_kafka(bootstrap: str, topic: str, n: int) -> int:
    """Baseline (b): a hand-written kafka-python consumer + ``json.loads`` + River.

    As a user writes it: :data:`KAFKA_BASELINE` (``max_poll_records=500`` is the default,
    spelled out, the same as ``KafkaSource``'s).
    """
    from kafka import KafkaConsumer

    model = _river()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap,
                             group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_records=500)
    seen, deadline = 0, time.monotonic() + 600
    try:
        while seen < n and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    e = json.loads(record.value)
                    model.predict_one(e["user_id"], e["item_id"])
                    model.learn_one(e["user_id"], e["item_id"], e["value"])
                    seen += 1
        consumer.commit()
    finally:
        consumer.close()
    return seen


def learn_path(topic: str, prefix: str, n: int) -> int:
    """The real ``learn``: ``build_online_run`` with defaults, run until ``n`` records."""
    from lifelong.config import Settings
    from lifelong.wiring import build_online_run

    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_env(topic=topic, dlq_topic=f"{topic}.dlq", prefix=prefix,
                                 group_id=f"bench-learn-{tag}", model=f"bench-{tag}")
    run = build_online_run(settings, register_target=False, resume=False)
    try:
        stats = run.worker.run(max_events=n, idle_timeout=60)
    finally:
        run.close()
    return stats.consumed


def blend_path(topic: str, prefix: str, n: int, deep_model: str) -> int:
    """``learn --blend-with deep_model``: ``build_online_run`` following its production."""
    from lifelong.config import Settings
    from lifelong.wiring import build_online_run

    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_env(topic=topic, dlq_topic=f"{topic}.dlq", prefix=prefix,
                                 group_id=f"bench-blend-{tag}", model=f"bench-blend-{tag}")
    run = build_online_run(settings, register_target=False, resume=False, clip=(1.0, 5.0),
                           blend_with=deep_model)
    try:
        learner = run.worker.learner
        deadline = time.monotonic() + 30
        while learner.deep is None:  # the production deep model is loaded in a thread
            if time.monotonic() > deadline:
                raise RuntimeError(f"deep model {deep_model} never arrived")
            time.sleep(0.02)
        stats = run.worker.run(max_events=n, idle_timeout=60)
    finally:
        run.close()
    return stats.consumed


def publish_deep(prefix: str, payloads: list[bytes], name: str) -> None:
    """Train a deep model on the first half of ``payloads``; publish and promote it."""
    import numpy as np

    from consumers.deep_publisher import DeepPublisher
    from learning.finetune import FineTuner
    from learning.torch_models import DeepRecommender
    from lifelong.config import Settings
    from lifelong.wiring import open_registry

    events = [json.loads(raw) for raw in payloads[: len(payloads) // 2]]
    deep = DeepRecommender(n_factors=16, clip=(1.0, 5.0), seed=0)
    FineTuner(deep, device="cpu", batch_size=1024, epochs_per_round=3).train_full(
        [e["user_id"] for e in events], [e["item_id"] for e in events],
        np.asarray([e["value"] for e in events], dtype=np.float32),
        np.asarray([e["ts"] for e in events], dtype=np.float64))
    publisher = DeepPublisher(open_registry(Settings.from_env(prefix=prefix)), name)
    publisher.promote(publisher.publish(deep).number, reason="bench")


def _child(cmd: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu_s": cpu, "wall_s": wall, "stdout": proc.stdout.strip()[-200:]}


def evaluate_process(path: Path, rows: int, report: Path) -> dict[str, float]:
    """``python -m lifelong evaluate`` on ``path`` as a whole process."""
    out = _child([sys.executable, "-m", "lifelong", "evaluate", "--data", str(path),
                  "--format", "csv", "--output", str(report)])
    loop = json.loads(report.read_text())
    return {"events": rows, "cpu_s": out["cpu_s"], "wall_s": out["wall_s"],
            "eps_cpu": rows / out["cpu_s"], "eps_wall": rows / out["wall_s"],
            "loop_eps_wall": loop["events_per_second"]}


def evaluate_loop(path: Path, decoded: bool) -> int:
    """``evaluate_file`` in this process (imports already warm): the loop alone."""
    from lifelong.commands import evaluate_file

    return int(evaluate_file(path, fmt="csv", decoded=decoded)["events"])


def bare_file(path: Path) -> int:
    """Baseline for ``evaluate``: read the csv, split, River predict/learn."""
    model = _river()
    n = 0
    with open(path, encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            user, item, value, _ts = line.rstrip("\n").split(",")
            model.predict_one(user, item)
            model.learn_one(user, item, float(value))
            n += 1
    return n


# the bare loop as a whole process: what ``evaluate`` pays besides its loop (interpreter start,
# River's import, reading the file) the baseline pays too; the model as ``_river()`` builds it
_BARE_FILE = """
import sys
from river import optim, reco
model = reco.BiasedMF(
    n_factors=10, bias_optimizer=optim.SGD(0.025), latent_optimizer=optim.SGD(0.05),
    latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=42),
    l2_bias=0.0, l2_latent=0.0, seed=42)
n = 0
with open(sys.argv[1], encoding="utf-8") as fh:
    next(fh)
    for line in fh:
        user, item, value, _ts = line.rstrip("\\n").split(",")
        model.predict_one(user, item)
        model.learn_one(user, item, float(value))
        n += 1
print(n)
"""


def bare_process(path: Path, rows: int) -> dict[str, float]:
    """The bare loop (:func:`bare_file`) as a whole ``python -c`` process, as evaluate is."""
    out = _child([sys.executable, "-c", _BARE_FILE, str(path)])
    if int(out["stdout"].splitlines()[-1]) != rows:
        raise RuntimeError(f"the bare process read {out['stdout']!r} rows, not {rows}")
    return {"events": rows, "cpu_s": out["cpu_s"], "wall_s": out["wall_s"],
            "eps_cpu": rows / out["cpu_s"], "eps_wall": rows / out["wall_s"]}


def startup(repeat: int) -> dict[str, Any]:
    """Fresh-interpreter start-up times (median and range over ``repeat``)."""
    probe = "import sys, consumers.worker; print('torch' in sys.modules)"
    cmds = {"learn --help": [sys.executable, "-m", "lifelong", "learn", "--help"],
            "import consumers.worker": [sys.executable, "-c", probe]}
    out: dict[str, Any] = {}
    for name, cmd in cmds.items():
        runs = [_child(cmd) for _ in range(repeat)]
        out[name] = {**summary([r["wall_s"] for r in runs]), "unit": "wall seconds"}
        if name.startswith("import"):
            out[name]["torch_imported"] = runs[-1]["stdout"] == "True"
    return out


_FIRST_EVENT = """
import sys, time, json
t0 = time.time()
from lifelong.config import Settings
from lifelong.wiring import build_online_run
t1 = time.time()
topic, prefix, tag = sys.argv[1:4]
settings = Settings.from_env(topic=topic, dlq_topic=topic + ".dlq", prefix=prefix,
                             group_id="bench-first-" + tag, model="bench-first-" + tag)
run = build_online_run(settings, register_target=False, resume=False)
worker, learned = run.worker, []
learn_one = worker.learner.learn_one
def first(event):
    out = learn_one(event)
    if not learned:
        learned.append(time.time())
    return out
worker.learner.learn_one = first
try:
    worker.run(max_events=1, idle_timeout=60)
finally:
    run.close()
print(json.dumps({"started": t0, "imported": t1, "learned": learned[0],
                  "torch": "torch" in sys.modules}))
"""


def first_event(bootstrap: str, repeat: int) -> dict[str, Any]:
    """A River-only ``learn`` (``build_online_run``, defaults) in a fresh interpreter, to its
    first event learned: wall seconds from the spawn, and from the end of its imports."""
    tag = uuid.uuid4().hex[:8]
    topic, prefix = f"bench-first-{tag}", f"bench-first-{tag}"
    _produce(bootstrap, topic, 2, seed=3)
    total, after, torch = [], [], False
    try:
        for i in range(repeat):
            spawn = time.time()
            out = _child([sys.executable, "-c", _FIRST_EVENT, topic, prefix, f"{tag}{i}"])
            got = json.loads(out["stdout"].splitlines()[-1])
            total.append(got["learned"] - spawn)
            after.append(got["learned"] - got["imported"])
            torch = torch or got["torch"]
    finally:
        _cleanup(bootstrap, topic, prefix)
    return {"to first event": {**summary(total), "unit": "wall seconds"},
            "first event after imports": {**summary(after), "unit": "wall seconds",
                                          "torch_imported": torch}}



def _ratios(runs: list[dict[str, dict[str, float]]], num: str, den: str) -> dict[str, Any]:
    return {key: summary([r[num][key] / r[den][key] for r in runs])
            for key in ("eps_cpu", "eps_wall")}


def _produce(bootstrap: str, topic: str, n: int, seed: int) -> list[bytes]:
    from stream.admin import TopicSpec, ensure_topics
    from stream.producer import EventProducer
    from stream.schema import encode
    from stream.synthetic import SyntheticStream

    events = list(SyntheticStream(n_events=n, drift_at=(n // 2,), seed=seed))
    ensure_topics(bootstrap, [TopicSpec(topic, 3), TopicSpec(f"{topic}.dlq", 1)])
    with EventProducer(bootstrap, topic) as producer:
        for e in events:
            producer.send(e)
        producer.flush()
    return [encode(e) for e in events]


def _cleanup(bootstrap: str, topic: str, prefix: str) -> None:
    from stream.admin import delete_topics

    delete_topics(bootstrap, [topic, f"{topic}.dlq"])
    drop_prefix(prefix)


def _line(name: str, ratio: dict[str, Any]) -> str:
    c, w = ratio["eps_cpu"], ratio["eps_wall"]
    return (f"  {name:<34} CPU {c['median']:.2f}x [{c['min']:.2f}-{c['max']:.2f}]"
            f"   wall {w['median']:.2f}x [{w['min']:.2f}-{w['max']:.2f}]")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--eval-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--label", default="run", help="name of the results file")
    parser.add_argument("--skip-evaluate", action="store_true")
    parser.add_argument("--only-evaluate", action="store_true",
                        help="only the evaluate rows (no services needed)")
    parser.add_argument("--only-startup", action="store_true",
                        help="only the start-up rows (learn --help, first event learned)")
    parser.add_argument("--blend", action="store_true",
                        help="add the learn --blend-with row (interleaved with learn)")
    parser.add_argument("--only-blend", action="store_true",
                        help="only the learn and learn --blend-with rows")
    args = parser.parse_args(argv)
    if args.only_evaluate:
        result = {"label": args.label, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                  "repeat": args.repeat, "python": platform.python_version(),
                  "load_average": os.getloadavg(), "commit": commit(),
                  "evaluate": _evaluate_rows(args.eval_rows, args.repeat),
                  "startup": startup(args.repeat)}
        result["load_average_end"] = os.getloadavg()
        _report(result)
        _save(result, args.label)
        return result
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ or "REDIS_URL" not in os.environ:
        raise SystemExit("bench.learn needs the services: source .cache/services/env")
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    if args.only_startup:
        result = {"label": args.label, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                  "repeat": args.repeat, "load_average": os.getloadavg(), "commit": commit(),
                  "startup": startup(args.repeat) | first_event(bootstrap, args.repeat)}
        _report(result)
        _save(result, args.label)
        return result
    tag = uuid.uuid4().hex[:8]
    topic, prefix = f"bench-learn-{tag}", f"bench-{tag}"
    result: dict[str, Any] = {
        "label": args.label, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "events": args.events, "repeat": args.repeat, "python": platform.python_version(),
        "load_average": os.getloadavg(), "commit": commit(), "kafka_baseline": KAFKA_BASELINE,
    }
    import kafka  # noqa: F401  imports are start-up, measured below, not per-event cost

    import lifelong.wiring  # noqa: F401

    try:
        payloads = _produce(bootstrap, topic, args.events, seed=1)
        blend = args.blend or args.only_blend
        if blend:
            publish_deep(prefix, payloads, "bench-deep")
        runs = []
        for i in range(args.repeat):
            order = ["learn", "blend"] if args.only_blend else ["memory", "kafka", "learn"]
            if blend and not args.only_blend:
                order.append("blend")
            k = i % len(order)
            order = order[k:] + order[:k]  # rotate: none always first
            run: dict[str, dict[str, float]] = {}
            for name in order:
                fn = {"memory": lambda: bare_memory(payloads),
                      "kafka": lambda: bare_kafka(bootstrap, topic, args.events),
                      "learn": lambda: learn_path(topic, prefix, args.events),
                      "blend": lambda: blend_path(topic, prefix, args.events, "bench-deep"),
                      }[name]
                # the garbage earlier runs left is not this run's: without this, a full
                # collection (0.3-0.5 s with the bench's objects) lands on whichever run
                # crosses the collector's threshold (a real learn starts a fresh process)
                gc.collect()
                run[name] = _timed(fn)
            runs.append(run)
        result["learn"] = {"runs": runs}
        if not args.only_blend:
            result["learn"] |= {"vs_memory": _ratios(runs, "learn", "memory"),
                                "vs_kafka": _ratios(runs, "learn", "kafka")}
        if blend:
            result["learn"]["blend_vs_learn"] = _ratios(runs, "blend", "learn")
    finally:
        _cleanup(bootstrap, topic, prefix)
    if not args.skip_evaluate and not args.only_blend:
        result["evaluate"] = _evaluate_rows(args.eval_rows, args.repeat)
    result["startup"] = startup(args.repeat) if not args.only_blend else {}
    if not args.only_blend:
        result["startup"] |= first_event(bootstrap, args.repeat)
    _report(result)
    _save(result, args.label)
    return result


def _save(result: dict[str, Any], label: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"learn-{label}.json").write_text(json.dumps(result, indent=1) + "\n")


def _evaluate_rows(rows: int, repeat: int) -> dict[str, Any]:
    """The evaluate rows: process, loop (from_fields) and loop (JSON path) vs bare, rotated."""
    from stream.synthetic import SyntheticStream, write

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "events.csv"
        write(SyntheticStream(n_events=rows, seed=2), data, "csv")
        warm = Path(tmp) / "warm.csv"  # imports and first-call costs are start-up, not loop
        write(SyntheticStream(n_events=2000, seed=3), warm, "csv")
        evaluate_loop(warm, decoded=True)
        evaluate_loop(warm, decoded=False)
        fns: dict[str, Callable[[], Any]] = {
            "evaluate": lambda: evaluate_process(data, rows, Path(tmp) / "r.json"),
            "loop": lambda: _timed(lambda: evaluate_loop(data, decoded=True)),
            "loop_json": lambda: _timed(lambda: evaluate_loop(data, decoded=False)),
            "bare": lambda: _timed(lambda: bare_file(data)),
            "bare_process": lambda: bare_process(data, rows)}
        eruns = []
        for i in range(repeat):
            names = list(fns)
            names = names[i % len(names):] + names[:i % len(names)]  # rotate: none always first
            eruns.append({name: fns[name]() for name in names})
    return {"runs": eruns, "vs_bare": _ratios(eruns, "evaluate", "bare"),
            "vs_bare_process": _ratios(eruns, "evaluate", "bare_process"),
            "loop_vs_bare": _ratios(eruns, "loop", "bare"),
            "loop_json_vs_bare": _ratios(eruns, "loop_json", "bare"),
            "loop_vs_loop_json": _ratios(eruns, "loop", "loop_json"),
            "loop_vs_bare_wall": summary(
                [r["evaluate"]["loop_eps_wall"] / r["bare"]["eps_wall"] for r in eruns])}



def _report(result: dict[str, Any]) -> None:
    if "learn" in result:
        _report_learn(result)
    if "evaluate" in result:
        ev = result["evaluate"]
        if "vs_bare_process" in ev:
            print(_line("evaluate process / bare process", ev["vs_bare_process"]))
        print(_line("evaluate process / bare loop (in process)", ev["vs_bare"]))
        for key, name in (("loop_vs_bare", "evaluate loop / bare (in process)"),
                          ("loop_json_vs_bare", "JSON-path loop / bare"),
                          ("loop_vs_loop_json", "evaluate loop / JSON-path loop")):
            if key in ev:
                print(_line(name, ev[key]))
        lw = ev["loop_vs_bare_wall"]
        print(f"  {'evaluate loop alone / bare (wall)':<34} {lw['median']:.2f}x "
              f"[{lw['min']:.2f}-{lw['max']:.2f}]")
    for name, s in result.get("startup", {}).items():
        extra = f"  torch imported: {s['torch_imported']}" if "torch_imported" in s else ""
        print(f"  start-up {name:<25} {s['median']:.2f} s [{s['min']:.2f}-{s['max']:.2f}]"
              f"{extra}")


def _report_learn(result: dict[str, Any]) -> None:
    n, r = result["events"], result["repeat"]
    learn = result["learn"]
    lrn = statistics.median(x["learn"]["eps_cpu"] for x in learn["runs"])
    print(f"learn through real Kafka, {n} events, {r} interleaved repeats (median [range])")
    if "vs_memory" in learn:
        mem = statistics.median(x["memory"]["eps_cpu"] for x in learn["runs"])
        kaf = statistics.median(x["kafka"]["eps_cpu"] for x in learn["runs"])
        print(f"  events/CPU-s: bare json+River {mem:.0f}, kafka-python+River {kaf:.0f}, "
              f"learn {lrn:.0f}")
        print(_line("learn / bare json.loads + River", learn["vs_memory"]))
        print(_line("learn / kafka-python + River", learn["vs_kafka"]))
        print(f"  (kafka-python + River: {KAFKA_BASELINE})")
    if "blend_vs_learn" in learn:
        bl = statistics.median(x["blend"]["eps_cpu"] for x in learn["runs"])
        print(f"  events/CPU-s: learn {lrn:.0f}, learn --blend-with {bl:.0f}")
        print(_line("learn --blend-with / learn (>= 0.75)", learn["blend_vs_learn"]))


if __name__ == "__main__":
    main()
