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
with a real River ``OnlineLearner("BiasedMF")`` that has seen every one of N users and
N/4 items: each repeat learns 1,000 new events (what the default cadence publishes after),
then publishes through ``RegistryPublisher`` (pickle, sign, store) and waits for a
``Subscriber`` with the default loader (fetch, verify, unpickle, swap). Baseline,
interleaved: ``pickle.dumps`` + one ``SET``, and one ``GET`` + ``pickle.loads``.

    python -m bench.model_store --sizes 1,10,50,200 --repeat 10 --users 10000,100000
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
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


def trained_learner(users: int, seed: int = 1) -> tuple[object, random.Random]:
    """A River BiasedMF learner that has seen each of ``users`` users and ``users // 4`` items."""
    from learning.online import OnlineLearner
    from stream.schema import Event

    rng = random.Random(seed)
    items = max(1, users // 4)
    learner = OnlineLearner("BiasedMF")
    for i in range(users):
        learner.learn_one(Event(event_id=str(i), user_id=f"u{i}", item_id=f"i{i % items}",
                                type="rating", value=float(rng.randint(1, 5)), ts=float(i)))
    return learner, rng


def bench_learner(url: str, prefix: str, users: int, repeat: int) -> dict[str, list[float]]:
    from consumers.publisher import RegistryPublisher
    from stream.schema import Event

    signer = Signer(os.urandom(32))
    registry = Registry.from_url(url, prefix=prefix, signer=signer)
    reader = Registry.from_url(url, prefix=prefix, signer=signer)
    bare = redis.Redis.from_url(url)
    model = f"bench-learner-{users}"
    learner, rng = trained_learner(users)
    publisher = RegistryPublisher(registry, model)
    times: dict[str, list[float]] = {k: [] for k in ("publish", "subscriber", "set", "get",
                                                     "bytes")}
    sub = Subscriber(reader, model, poll_interval=5.0, metrics_registry=CollectorRegistry())
    n = users
    with sub:
        for i in range(repeat + 1):
            for _ in range(1000):  # the events since the last publish
                n += 1
                learner.learn_one(Event(  # type: ignore[attr-defined]
                    event_id=str(n), user_id=f"u{rng.randrange(users)}",
                    item_id=f"i{rng.randrange(max(1, users // 4))}", type="rating",
                    value=float(rng.randint(1, 5)), ts=float(n)))
            start = time.perf_counter()
            number = publisher.publish(learner, {("events", 0): n})  # type: ignore[arg-type]
            published = time.perf_counter()
            if not sub.wait_for_version(number, timeout=300, exact=True):
                raise RuntimeError(f"subscriber never loaded {model} version {number}")
            loaded = time.perf_counter()
            key = f"{prefix}:bare:{users}"
            blob = pickle.dumps(learner, protocol=pickle.HIGHEST_PROTOCOL)
            bare.set(key, blob)
            stored = time.perf_counter()
            got = bare.get(key)
            assert isinstance(got, bytes)
            pickle.loads(got)
            fetched = time.perf_counter()
            bare.unlink(key)
            registry.gc(model, keep_last=2, grace_seconds=0)
            if i:
                times["publish"].append(published - start)
                times["subscriber"].append(loaded - published)
                times["set"].append(stored - loaded)
                times["get"].append(fetched - stored)
                times["bytes"].append(float(len(blob)))
    for client in (registry, reader):
        client.close()
    bare.close()
    return times


def report_learners(url: str, results: dict[int, dict[str, list[float]]]) -> None:
    print(f"real OnlineLearner(BiasedMF), publish after 1,000 new events, on "
          f"{url.split('@')[-1]}: seconds p50 / p99")
    print(f"{'users':>7} {'MB':>6} {'n':>3} {'publish':>15} {'dumps+SET':>15} {'ratio':>5} "
          f"{'subscriber':>15} {'GET+loads':>15} {'ratio':>5}")
    for users, t in results.items():
        def cell(name: str, t: dict[str, list[float]] = t) -> str:
            return f"{pct(t[name], 50):7.3f}/{pct(t[name], 99):7.3f}"

        p50 = {k: pct(v, 50) for k, v in t.items()}
        print(f"{users:>7} {p50['bytes'] / MB:>6.1f} {len(t['publish']):>3} {cell('publish')} "
              f"{cell('set')} {p50['publish'] / p50['set']:>5.2f} {cell('subscriber')} "
              f"{cell('get')} {p50['subscriber'] / p50['get']:>5.2f}")


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
            learners[users] = bench_learner(url, prefix, users, args.learner_repeat)
    finally:
        cleanup(url, prefix)
    if learners:
        report_learners(url, learners)
        out = Path(__file__).resolve().parent / "results" / "model_store-learners.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average": os.getloadavg(), "unit": "seconds; bytes = pickled learner",
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
