"""The README's speed table, made from the results JSON under ``bench/results/``.

``python -m bench.table`` prints it; ``--write`` replaces the lines between the
``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers in README.md. Each row names
its results file; a row whose file is absent is left out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _load(*names: str) -> dict[str, Any] | None:
    """The first of ``names`` (newest first) found under bench/results, with its name."""
    for name in names:
        path = RESULTS / name
        if path.exists():
            return {**json.loads(path.read_text()), "_file": name}
    return None


def _r(s: dict[str, Any], fmt: str = ".2f", scale: float = 1.0) -> str:
    return (f"{scale * s['median']:{fmt}} [{scale * s['min']:{fmt}}-"
            f"{scale * s['max']:{fmt}}]")


def rows() -> list[str]:
    """The table's markdown lines."""
    out = ["| row | figure (median [range]) | target | results |",
           "| --- | --- | --- | --- |"]
    ln = _load("learn-s8-quiet.json", "learn-s7-quiet.json", "learn-s6-quiet.json",
               "learn-quiet-final.json", "learn-speed4.json", "learn-after.json")
    if ln is not None and "vs_memory" in ln["learn"]:
        f = ln["_file"]
        out.append(f"| `learn` through Kafka / bare json.loads + River (events per CPU-s, "
                   f"{ln['events']:,} events, commit {ln['commit']}) | "
                   f"{_r(ln['learn']['vs_memory']['eps_cpu'])}x | ≥ 0.75x | {f} |")
        out.append(f"| `learn` / kafka-python + River | {_r(ln['learn']['vs_kafka']['eps_cpu'])}x"
                   f" | ≥ 0.95x | {f} |")
    if (ev := _load("learn-evaluate-s5-final.json", "learn-evaluate-speed5.json",
                    "learn-evaluate-after.json")) is not None:
        e, f = ev["evaluate"], ev["_file"]
        if "vs_bare_process" in e:  # the bare loop as a whole process too (bench.learn)
            out.append(f"| `evaluate` 100k-row csv, whole process / bare loop as a whole "
                       f"process (events per CPU-s) | {_r(e['vs_bare_process']['eps_cpu'])}x "
                       f"| ≥ 0.6x | {f} |")
        out.append(f"| `evaluate` 100k-row csv, whole process / bare loop in process "
                   f"(events per CPU-s) | {_r(e['vs_bare']['eps_cpu'])}x | ≥ 0.6x | {f} |")
        out.append(f"| `evaluate` loop / bare loop (in process) | "
                   f"{_r(e['loop_vs_bare']['eps_cpu'])}x | — | {f} |")
        for name, s in ev.get("startup", {}).items():
            out.append(f"| start-up `{name}` (wall) | {_r(s)} s | — | {f} |")
    if (st := _load("learn-startup.json")) is not None:
        for name in ("to first event", "first event after imports"):
            if name in st["startup"]:
                out.append(f"| River-only `learn`, {name} (wall) | "
                           f"{_r(st['startup'][name])} s | < 2 s after imports | "
                           "learn-startup.json |")
    for names in (("freshness-5k-s7-quiet.json", "freshness-5k-s6-quiet.json",
                   "freshness-5k-s5-quiet.json", "freshness-quiet-final.json",
                   "freshness-5k-speed4.json", "freshness-5k.json"),
                  ("freshness-5k-s6-long.json",), ("freshness-2k-speed4.json",)):
        if (fr := _load(*names)) is None:
            continue
        lr, users = fr["learn"], fr.get("users", 20_000)
        load = max(fr.get("load_average", [0])[0], fr.get("load_average_end", [0])[0])
        out.append(f"| freshness produced → visible, {fr['rate']:.0f} events/s asked "
                   f"({_r(lr['rate'], '.0f')} achieved), {users:,} users, load ≤ {load:.0f} "
                   f"| p50 {_r(lr['p50'])} s, p99 {_r(lr['p99'])} s | p99 ≤ 1 s at 5k/s "
                   f"| {fr['_file']} |")
    if (mem := _load("memory-2m-200k-s7-quiet.json", "memory-2m-200k-s6-quiet.json",
                     "memory-2m-200k-speed5.json", "memory-2m-200k.json")) is not None \
            and "worker" in mem:
        w, b = mem["worker"], mem["bare"]
        out.append(f"| RSS growth 50% → 100% of {mem['events']:,} events, {mem['users']:,} users "
                   f"(worker in process, publish: {mem['publish']}) | "
                   f"{_r(w['growth_50_100'], '+.1f', 100)} % (bare River "
                   f"{_r(b['growth_50_100'], '+.1f', 100)} %) | ≤ 5 % | {mem['_file']} |")
    if (rk := _load("ranking-throughput.json")) is not None:
        out.append(f"| `evaluate --task ranking` ({rk['model']}), MovieTweetings, whole process "
                   f"(events per CPU-s; / bare decayed popularity + argpartition) | "
                   f"{_r(rk['eps_cpu'], ',.0f')} ({_r(rk['ratio'])}x) | ≥ 5,000 | "
                   "ranking-throughput.json |")
    for name, stream in (("lifelong-r8-quiet-synthetic.json", "synthetic"),
                         ("lifelong-r8-quiet-real.json", "real")):
        if (lf := _load(name)) is not None and stream in lf:
            s = lf[stream]
            out.append(f"| `evaluate --model lifelong` / `--model BiasedMF`, {stream} stream "
                       f"(events per CPU-s; RMSE / best River {s['rmse_ratio']:.5f}, "
                       f"≤ 0.97) | {_r(s['speed_summary'])}x | ≥ 0.5x | {name} |")
    if (bl := _load("learn-blend-s8-quiet.json")) is not None:
        out.append(f"| `learn --blend-with` / `learn` through Kafka (events per CPU-s) | "
                   f"{_r(bl['learn']['blend_vs_learn']['eps_cpu'])}x | ≥ 0.75x | "
                   "learn-blend-s8-quiet.json |")
    for name in ("ddp-quiet-s8-tt.json", "ddp-quiet-s8-mf-b16k.json"):
        if (dd := _load(name)) is not None:
            a = dd["args"]
            for vs, what in (("vs_one", "one process"), ("vs_one_1t", "a 1-thread process")):
                v = dd["ratios"][vs]
                s = {"median": sorted(v)[len(v) // 2], "min": min(v), "max": max(v)}
                out.append(f"| `torchrun --nproc_per_node 2` round / {what} ({a['module']}, "
                           f"batch {a['batch']:,}; samples/s) | {_r(s)}x | ≥ 1.5x | {name} |")
    if (fb := _load("feedback.json")) is not None:
        for model, res in fb["models"].items():
            if "with/without" in res:
                out.append(f"| feedback loop, {model}: online CTR with / without negatives "
                           f"({len(fb['seeds'])} seeds, {fb['steps']:,} steps) | "
                           f"{_r(res['with/without']['ctr'], '.3f')}x | — | feedback.json |")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args(argv)
    table = rows()
    if not args.write:
        print("\n".join(table))
        return
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n" + "\n".join(table) + f"\n{END}{tail}")


if __name__ == "__main__":
    main()
