"""Model store: publish and subscriber load time for big blobs vs a bare redis-py SET/GET.

For each size a random blob is published (chunked, hashed, signed, one MULTI/EXEC) to the
real local Redis under a unique key prefix. Measured per repeat:

- publish: ``Registry.publish`` until it returns;
- subscriber: from publish returning until ``Subscriber.wait_for_version`` returns (woken
  by pub/sub, fetch, sha256 + signature check, swap);
- read_blob: a verified ``Registry.read_blob`` by another client;
- baseline: a plain redis-py ``SET`` and ``GET`` of the same bytes under one key.

p50/p99 over repeats (with few repeats p99 is the worst run), ratios lifelong / bare on
p50, and the 50 MB subscriber p99 against the 0.5 s target. Keys are deleted at the end.

Random bytes leave out the pickling that dominates a real publish, so ``--users`` adds rows
with a real River ``OnlineLearner("BiasedMF")`` holding N users and N/4 items (see
:func:`trained_learner`): after a base version, each repeat learns 1,000 new events (what
the default cadence publishes after), publishes a delta through ``RegistryPublisher``
(changed rows, sign, store) and waits for a ``Subscriber`` with the default loader (fetch,
verify, apply to the standby, swap). Baseline, interleaved in the same repeats: the same
learner published whole (``compact_after=0``: pickle, sign, store) and loaded whole by a
second subscriber (fetch, verify, unpickle, swap); ratios are whole / delta on medians.

    python -m bench.model_store --sizes 1,10,50,200 --repeat 10 --users 10000,100000
    python -m bench.model_store --sizes "" --users 10000,100000,1000000 --learner-repeat 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import redis
from prometheus_client import CollectorRegistry

from model_store import Registry, Signer
from model_store.subscriber import Subscriber

MB = 2**20
TARGET_SECONDS = 0.5
TARGET_MB = 50


def redis_url() -> str:
    """REDIS_URL, else the address of the Redis the local launcher runs."""
    from deploy.services import resolve

    return os.environ.get("REDIS_URL") or resolve("redis", start=False).address


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q))


def bench_size(url: str, prefix: str, size_mb: int, repeat: int) -> dict[str, list[float]]:
    signer = Signer(os.urandom(32))
    publisher = Registry.from_url(url, prefix=prefix, signer=signer)
    reader = Registry.from_url(url, prefix=prefix, signer=signer)
    bare = redis.Redis.from_url(url)
    blob = bytearray(os.urandom(size_mb * MB))
    model = f"bench-{size_mb}mb"
    times: dict[str, list[float]] = {k: [] for k in ("publish", "subscriber", "read_blob",
                                                     "set", "get")}
    # the subscriber follows with pub/sub; the poll is only a fallback
    sub = Subscriber(reader, model, loader=lambda v, data: len(data), poll_interval=5.0,
                     metrics_registry=CollectorRegistry())
    with sub:
        for i in range(repeat + 1):  # the first round warms connections and is dropped
            blob[:8] = i.to_bytes(8, "big")  # a new blob each time
            start = time.perf_counter()
            v = publisher.publish(model, blob, format="safetensors")
            published = time.perf_counter()
            if not sub.wait_for_version(v.number, timeout=120, exact=True):
                raise RuntimeError(f"subscriber never loaded {model} version {v.number}")
            loaded = time.perf_counter()
            data = reader.read_blob(model, v.number)
            read = time.perf_counter()
            assert len(data) == len(blob)
            del data
            key = f"{prefix}:bare:{size_mb}"
            bare.set(key, blob)
            stored = time.perf_counter()
            got = bare.get(key)
            fetched = time.perf_counter()
            assert got is not None and len(got) == len(blob)
            del got
            bare.unlink(key)
            publisher.gc(model, keep_last=1, grace_seconds=0)  # bound Redis memory
            if i:
                times["publish"].append(published - start)
                times["subscriber"].append(loaded - published)
                times["read_blob"].append(read - loaded)
                times["set"].append(stored - read)
                times["get"].append(fetched - stored)
    publisher.close()
    reader.close()
    bare.close()
    return times


def trained_learner(users: int, seed: int = 1, replay: int = 200_000
                    ) -> tuple[object, random.Random]:
    """A River BiasedMF learner holding ``users`` users and ``users // 4`` items.

    Up to ``replay`` users are learned event by event (one rating each); past that the
    remaining rows are built directly, as ``learn_one`` would leave a row after its first
    event: bias from that SGD step, latents drawn from the model's own initializer (replaying
    a million users' events takes minutes on this 2-core machine). The learner then learns
    ``replay // 10`` more events, so its global mean, optimizers and RNG are in use.
    """
    from learning.online import OnlineLearner
    from stream.schema import Event

    rng = random.Random(seed)
    items = max(1, users // 4)
    learner = OnlineLearner("BiasedMF")
    for i in range(min(users, replay)):
        learner.learn_one(Event(event_id=str(i), user_id=f"u{i}", item_id=f"i{i % items}",
                                type="rating", value=float(rng.randint(1, 5)), ts=float(i)))
    river = learner.model._model  # type: ignore[attr-defined]
    draw = np.random.default_rng(seed)
    for start in range(replay, users, 100_000):
        stop = min(users, start + 100_000)
        latents = river.latent_initializer(shape=(stop - start, river.n_factors))
        biases = draw.normal(0.0, 0.05, stop - start).tolist()
        for k, i in enumerate(range(start, stop)):
            river.u_biases[f"u{i}"] = biases[k]
            river.u_latents[f"u{i}"] = latents[k]
            if i < items:
                river.i_biases[f"i{i}"] = biases[k]
                river.i_latents[f"i{i}"] = latents[k].copy()
    for i in range(replay // 10):
        learner.learn_one(Event(event_id=f"w{i}", user_id=f"u{rng.randrange(users)}",
                                item_id=f"i{rng.randrange(items)}", type="rating",
                                value=float(rng.randint(1, 5)), ts=float(i)))
    learner.clear_dirty()
    return learner, rng


def _standby_ready(sub: Subscriber, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while "latest" not in sub._replicas._standby and time.monotonic() < deadline:
        time.sleep(0.05)
    if "latest" not in sub._replicas._standby:
        raise RuntimeError("the subscriber built no standby copy of the base")


def bench_learner(url: str, prefix: str, users: int, repeat: int,
                  whole_repeat: int) -> dict[str, list[float]]:
    """Per repeat: 1,000 new events, then a delta publish (and its subscriber apply) and,
    interleaved, a whole-version publish of the same learner (and its subscriber load)."""
    from consumers.publisher import RegistryPublisher
    from stream.schema import Event

    signer = Signer(os.urandom(32))
    clients = [Registry.from_url(url, prefix=prefix, signer=signer) for _ in range(4)]
    model, whole_model = f"bench-delta-{users}", f"bench-whole-{users}"
    built = time.perf_counter()
    learner, rng = trained_learner(users)
    log_build = time.perf_counter() - built
    deltas = RegistryPublisher(clients[0], model)
    whole = RegistryPublisher(clients[1], whole_model, compact_after=0)
    times: dict[str, list[float]] = {k: [] for k in (
        "publish", "publish_cpu", "bytes", "subscriber", "whole_publish", "whole_bytes",
        "whole_subscriber", "base_publish", "build", "compactions", "switch", "apply_cpu")}
    times["build"].append(log_build)
    sub = Subscriber(clients[2], model, poll_interval=5.0, metrics_registry=CollectorRegistry())
    whole_sub = Subscriber(clients[3], whole_model, poll_interval=5.0,
                           metrics_registry=CollectorRegistry())
    load = sub._replicas.load
    apply_cpu: list[float] = []

    def timed_load(*args: object) -> object:  # CPU of the subscriber thread for one version
        cpu = time.thread_time()
        out = load(*args)  # type: ignore[arg-type]
        apply_cpu.append(time.thread_time() - cpu)
        return out

    sub._replicas.load = timed_load  # type: ignore[method-assign]
    n = 0
    with sub, whole_sub:
        started = time.perf_counter()
        base = deltas.publish(learner, {("events", 0): n})  # type: ignore[arg-type]
        times["base_publish"].append(time.perf_counter() - started)
        if not sub.wait_for_version(base, timeout=600, exact=True):
            raise RuntimeError(f"subscriber never loaded {model} version {base}")
        _standby_ready(sub, 600)
        i = -1
        while len(times["publish"]) < repeat and i < 3 * repeat:  # round 0 warms up
            i += 1
            for _ in range(1000):  # the events since the last publish
                n += 1
                learner.learn_one(Event(  # type: ignore[attr-defined]
                    event_id=f"r{n}", user_id=f"u{rng.randrange(users)}",
                    item_id=f"i{rng.randrange(max(1, users // 4))}", type="rating",
                    value=float(rng.randint(1, 5)), ts=float(n)))
            switched = sub.metrics.load_seconds.labels(model)._sum.get()
            cpu, start = time.process_time(), time.perf_counter()
            number = deltas.publish(learner, {("events", 0): n})  # type: ignore[arg-type]
            published, cpu = time.perf_counter(), time.process_time() - cpu
            if not sub.wait_for_version(number, timeout=300, exact=True):
                raise RuntimeError(f"subscriber never loaded {model} version {number}")
            loaded = time.perf_counter()
            version = clients[0].get(model, number)
            if version.format != "river-delta":  # compaction: a new base (not a sample)
                times["compactions"].append(published - start)
                _standby_ready(sub, 600)
                continue
            if i:
                times["publish"].append(published - start)
                times["publish_cpu"].append(cpu)
                times["subscriber"].append(loaded - published)
                times["bytes"].append(float(version.size))
                # the subscriber's own work (fetch, verify, apply, swap), without its wake-up
                times["switch"].append(sub.metrics.load_seconds.labels(model)._sum.get()
                                       - switched)
                times["apply_cpu"].append(apply_cpu[-1])
            # the baseline, interleaved: the same learner, whole
            if i and len(times["whole_publish"]) < whole_repeat:
                start = time.perf_counter()
                number = whole.publish(learner, {("events", 0): n})  # type: ignore[arg-type]
                published = time.perf_counter()
                if not whole_sub.wait_for_version(number, timeout=600, exact=True):
                    raise RuntimeError(f"subscriber never loaded {whole_model} {number}")
                times["whole_publish"].append(published - start)
                times["whole_subscriber"].append(time.perf_counter() - published)
                times["whole_bytes"].append(float(clients[1].get(whole_model, number).size))
                clients[1].gc(whole_model, keep_last=1, grace_seconds=0)
        if sub._replicas.reloaded != 1 + len(times["compactions"]):
            raise RuntimeError("the delta subscriber reloaded a delta whole")
    for client in clients:
        client.close()
    return times


def report_learners(url: str, results: dict[int, dict[str, list[float]]]) -> None:
    print(f"real OnlineLearner(BiasedMF), a publish after 1,000 new events, on "
          f"{url.split('@')[-1]}: seconds, median [min-max] over n repeats; "
          "whole = every version the whole pickled learner (compact_after=0), interleaved")
    print(f"{'users':>8} {'n':>3} {'delta KB':>9} {'delta publish':>22} {'delta apply':>22} "
          f"{'whole MB':>8} {'whole publish':>22} {'whole load':>22} {'pub x':>6} "
          f"{'load x':>6}")
    for users, t in results.items():
        def cell(name: str, t: dict[str, list[float]] = t) -> str:
            v = t[name]
            return f"{pct(v, 50):7.3f} [{min(v):.3f}-{max(v):.3f}]" if v else "-"

        p50 = {k: pct(v, 50) for k, v in t.items() if v}
        pub_x = p50.get("whole_publish", math.nan) / p50["publish"]
        load_x = p50.get("whole_subscriber", math.nan) / p50["subscriber"]
        print(f"{users:>8} {len(t['publish']):>3} {p50['bytes'] / 1024:>9.1f} "
              f"{cell('publish'):>22} {cell('subscriber'):>22} "
              f"{p50.get('whole_bytes', math.nan) / MB:>8.1f} {cell('whole_publish'):>22} "
              f"{cell('whole_subscriber'):>22} {pub_x:>6.1f} {load_x:>6.1f}")
        verdict = ("meets" if pct(t["publish"], 50) < 0.1 and pct(t["subscriber"], 50) < 0.1
                   else "MISSES")
        print(f"{'':>8} delta publish max {max(t['publish']):.3f} s (CPU "
              f"{pct(t['publish_cpu'], 50):.3f} s), apply max {max(t['subscriber']):.3f} s "
              f"(of which fetch+verify+apply+swap {cell('switch')}, CPU "
              f"{cell('apply_cpu')}): {verdict} the 100 ms "
              "target (median); base "
              f"publish {t['base_publish'][0]:.2f} s, {len(t['compactions'])} compaction(s) "
              f"during the run; learner built in {t['build'][0]:.0f} s")


def cleanup(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.unlink(*keys[start:start + 500])
    client.close()


def main(argv: list[str] | None = None) -> dict[int, dict[str, list[float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50,200", help="blob sizes in MB")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--big-repeat", type=int, default=3,
                        help="repeats for blobs of 100 MB and more (memory)")
    parser.add_argument("--users", default="",
                        help="comma-separated user counts for real-learner rows (e.g. "
                             "10000,100000); empty: none")
    parser.add_argument("--learner-repeat", type=int, default=5)
    parser.add_argument("--whole-repeat", type=int, default=3,
                        help="repeats of the whole-version baseline (slow at 1M users)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    url = redis_url()
    prefix = f"bench-ms-{uuid.uuid4().hex[:8]}"
    results: dict[int, dict[str, list[float]]] = {}
    learners: dict[int, dict[str, list[float]]] = {}
    try:
        for size in sizes:
            repeat = min(args.repeat, args.big_repeat) if size >= 100 else args.repeat
            results[size] = bench_size(url, prefix, size, repeat)
        for users in (int(u) for u in args.users.split(",") if u):
            learners[users] = bench_learner(url, prefix, users, args.learner_repeat,
                                            args.whole_repeat)
    finally:
        cleanup(url, prefix)
    if learners:
        report_learners(url, learners)
        out = Path(__file__).resolve().parent / "results" / "model_store-learners.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average": os.getloadavg(),
            "unit": "seconds; bytes = the version's blob (delta / whole)",
            "users": {str(u): t for u, t in learners.items()}}, indent=1) + "\n")
    if not results:
        return learners
    print(f"model store vs bare redis-py on {url.split('@')[-1]}, seconds p50 / p99")
    head = (f"{'MB':>4} {'n':>3} {'publish':>15} {'bare SET':>15} {'ratio':>5} "
            f"{'subscriber':>15} {'read_blob':>15} {'bare GET':>15} {'sub/GET':>7} "
            f"{'read/GET':>8}")
    print(head)
    for size, t in results.items():
        def cell(name: str, t: dict[str, list[float]] = t) -> str:
            return f"{pct(t[name], 50):7.3f}/{pct(t[name], 99):7.3f}"

        p50 = {k: pct(v, 50) for k, v in t.items()}
        print(f"{size:>4} {len(t['publish']):>3} {cell('publish')} {cell('set')} "
              f"{p50['publish'] / p50['set']:>5.2f} {cell('subscriber')} {cell('read_blob')} "
              f"{cell('get')} {p50['subscriber'] / p50['get']:>7.2f} "
              f"{p50['read_blob'] / p50['get']:>8.2f}")
    if TARGET_MB in results:
        t = results[TARGET_MB]
        sub99, pub99 = pct(t["subscriber"], 99), pct(t["publish"], 99)
        verdict = "meets" if sub99 <= TARGET_SECONDS else "MISSES"
        print(f"{TARGET_MB} MB: subscriber load p99 {sub99:.3f} s {verdict} the "
              f"{TARGET_SECONDS} s target (publish p99 {pub99:.3f} s)")
    return results


if __name__ == "__main__":
    main()
