"""What a shard version costs with the item exchange on: whole pickles vs row deltas.

The publishing ``learn --sharded`` does, in one process over an in-memory signed store (no
Kafka, no Redis: the figure is the checkpoint itself): one River learner per partition
(users by the producer's partitioner), the item exchange every ``--every`` events of a
shard (``ItemExchange.maybe_exchange``, as after every batch) and a shard version every
``--version-every`` events of that shard through ``ExchangingPublisher(RegistryPublisher)``,
either with ``compact_after=0`` (every version a whole pickle: the shard wiring before
round 7) or row deltas carrying the exchange state (since round 7) compacted as
``--compact-after`` / ``--compact-floor-bytes`` say (default: what ``lifelong.config``
gives every learner, 1000 deltas or half the base, at least 16 MiB).
The two run interleaved, ``--repeat`` times, on the same events; the figure is the
CPU time (``time.process_time``) spent in ``publish`` per version and the bytes stored,
median [range] over the repeats. Learning is the same in both (checked: equal predictions).

    python -m bench.shard_publish --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from bench.common import commit, summary
from bench.scale import REAL, RESULTS, load_events

KEY = b"bench-shard-publish-signing-key"


def run(events: list[Any], clip: tuple[float, float], partitions: int, *, compact_after: int,
        every: int, version_every: int, floor: int = 0) -> dict[str, Any]:
    """Learn ``events`` in ``partitions`` shards, publishing; what the publishing cost."""
    from consumers.item_exchange import ExchangingPublisher, ItemExchange
    from consumers.publisher import RegistryPublisher
    from learning.online import OnlineLearner
    from model_store.registry import Registry
    from model_store.router import partition_for
    from model_store.signing import Signer

    store = Registry.from_url("memory://", signer=Signer(KEY))
    shards = [OnlineLearner(clip=clip) for _ in range(partitions)]
    exchanges = [ItemExchange(store, "bench", k, partitions, every_events=every)
                 for k in range(partitions)]
    inner = [RegistryPublisher(store, f"bench.p{k}", compact_after=compact_after,
                               compact_floor_bytes=floor)
             for k in range(partitions)]
    pubs = [ExchangingPublisher(p, ex) for p, ex in zip(inner, exchanges, strict=True)]
    seen = [0] * partitions
    cpu, versions = 0.0, 0
    for e in events:
        k = partition_for(e.user_id, partitions)
        shards[k].learn_one(e)
        exchanges[k].maybe_exchange(shards[k])
        seen[k] += 1
        if seen[k] % version_every == 0:
            at = time.process_time()
            pubs[k].publish(shards[k], {})
            cpu += time.process_time() - at
            versions += 1
    size = sum(v.size for k in range(partitions) for v in store.versions(f"bench.p{k}"))
    probe = [(e.user_id, e.item_id) for e in events[:: max(1, len(events) // 500)]]
    return {"versions": versions, "publish_cpu_s": cpu, "ms_per_version": 1e3 * cpu / versions,
            "bytes": size, "bases": sum(p.bases for p in inner),
            "deltas": sum(p.deltas for p in inner),
            "predictions": [shards[partition_for(u, partitions)].predict_one(u, i)
                            for u, i in probe]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--events", type=int, default=None, help="first N events only")
    parser.add_argument("--every", type=int, default=50, help="item exchange cadence")
    parser.add_argument("--version-every", type=int, default=600,
                        help="a shard version every N events of the shard")
    parser.add_argument("--compact-after", type=int, default=1000,
                        help="the deltas' compaction (lifelong.config: LIFELONG_COMPACT_*)")
    parser.add_argument("--compact-floor-bytes", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--label", default="latest")
    args = parser.parse_args(argv)
    name, events, clip = load_events(REAL, 60_000)
    events = events[: args.events] if args.events else events
    rows: dict[str, list[dict[str, Any]]] = {"whole": [], "deltas": []}
    for _ in range(args.repeat):
        for mode, compact in (("whole", 0), ("deltas", args.compact_after)):
            rows[mode].append(run(events, clip, args.partitions, compact_after=compact,
                                  every=args.every, version_every=args.version_every,
                                  floor=args.compact_floor_bytes))
    same = all(a.pop("predictions") == b.pop("predictions")
               for a, b in zip(rows["whole"], rows["deltas"], strict=True))
    ratio = summary([w["ms_per_version"] / d["ms_per_version"]
                     for w, d in zip(rows["whole"], rows["deltas"], strict=True)])
    result = {"label": args.label, "stream": name, "events": len(events),
              "load_average": os.getloadavg(), "commit": commit(), "runs": rows,
              "same_predictions": same, "whole_over_deltas": ratio}
    for mode, runs in rows.items():
        ms = summary([r["ms_per_version"] for r in runs])
        print(f"{name}, {len(events)} events, {mode}: {runs[0]['versions']} versions "
              f"({runs[0]['bases']} bases), publish {ms['median']:.2f} ms CPU a version "
              f"[{ms['min']:.2f}-{ms['max']:.2f}], {runs[0]['bytes'] / 1e6:.1f} MB stored")
    print(f"whole / deltas, CPU a version: {ratio['median']:.2f}x [{ratio['min']:.2f}-"
          f"{ratio['max']:.2f}]; same predictions: {same}; load {os.getloadavg()[0]:.1f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"shard-publish-{args.label}.json").write_text(json.dumps(result, indent=1)
                                                              + "\n")
    return result


if __name__ == "__main__":
    main()
