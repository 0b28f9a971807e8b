"""Data-parallel fine-tuning: ``torchrun --nproc_per_node N`` rounds vs one process.

Each configuration runs as its own process group (like a user would start it), in memory
(no Kafka or Redis: the figure is the round itself), interleaved with the others in every
repeat: ``one`` is a plain process with the threads ``lifelong finetune`` uses by default
(:func:`learning.distributed.set_threads`: ``max(1, CPUs available // LOCAL_WORLD_SIZE)``,
all the CPUs for one process; ``OMP_WAIT_POLICY=PASSIVE`` unless set, as
:mod:`learning.openmp`) and the default optimizer (``sparse_adam``), ``one-1t`` the
same with one torch thread (on a machine whose cores other work also uses, torch's spinning
OpenMP threads can cost more than they give), ``ddp`` is ``torchrun --standalone
--nproc_per_node N`` with ``sparse_adam`` (sparse gradients, allreduced by gloo; the default
on CPU) and ``ddp-adam`` the same with dense ``adam`` (what NCCL needs); each rank sets the
same default (CPUs // N threads). Rank 0 pays what it pays under ``lifelong finetune``
(it sends every round's fresh samples to the other ranks; replay shares are all-gathered),
but no rank reads Kafka or writes Redis here, in any configuration. All train the
same rounds: Zipf-skewed ids
(:func:`bench.finetune.make_batch`), a warm-up round, then ``--rounds`` measured rounds of
``--fresh`` fresh samples plus as many replayed, global batch ``--batch``. The figure is
samples trained per wall second over the measured rounds (rank 0's clock; the ranks are in
lock-step), wall time because the point is using more cores; samples per CPU-second (all
ranks' ``process_time``, every round) say what DDP costs in CPU, steadier under load.
Ratios are ``ddp`` (and ``ddp-adam``) over ``one`` and ``one-1t`` of the same repeat; median
and range over ``--repeats``. The "quiet bound" is what a machine with nothing else running
could at most give: samples over the larger of the busiest main thread's CPU-seconds (every
rank's ``thread_time``; a rank's step runs on its main thread) and all CPU-seconds over the
cores; a bound, not a measurement (lock-step waits are left out: in the lead's quiet MF run,
``quiet-s6``, ``ddp`` reached 0.73x of samples over all CPU-s / cores), for reading a loaded
machine's run beside the quiet rerun.

``--module`` picks the model: ``mf`` (biased MF, ``--factors``) or ``two_tower`` (MLP towers
``factors-hidden-32``, the defaults of ``lifelong finetune --kind two_tower``), where the
forward/backward, split over the ranks, is a larger share of a step.

    python -m bench.ddp --repeats 3
    python -m bench.ddp --repeats 3 --module two_tower --fresh 50000 --configs one,one-1t,ddp
    python -m bench.ddp --repeats 3 --nproc 2 --fresh 200000 --batch 4096
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    """One configuration: train the rounds, rank 0 writes the figures to ``--out``."""
    from learning.openmp import passive_wait

    passive_wait()  # as `lifelong finetune` does, before torch is imported
    import torch

    from bench.finetune import make_batch
    from learning.distributed import DistEnv, Group, set_threads
    from learning.finetune import FineTuner
    from learning.replay import ReplayBuffer
    from learning.torch_models import DeepRecommender

    set_threads(args.threads)  # 0: what `lifelong finetune` does by default
    env = DistEnv.from_environ()
    group = Group(env, torch.device("cpu"), timeout=600) if env else None
    world, rank = (group.world, group.rank) if group else (1, 0)
    model = DeepRecommender(args.module, n_factors=args.factors, hidden=args.hidden, seed=0)
    tuner = FineTuner(model, lr=0.01,
                      optimizer=args.optimizer, batch_size=args.batch, epochs_per_round=1,
                      replay_ratio=1.0, device="cpu", group=group)
    buffer = ReplayBuffer(max(args.capacity // world, 1), recent_window=args.capacity // 10
                          // world, seed=rank)
    rng = np.random.default_rng(0)
    rounds = [make_batch(rng, args.fresh, args.users, args.items, 1e6 * k)
              for k in range(args.rounds + 1)]
    reports = []
    cpu0, main0 = time.process_time(), time.thread_time()
    if rank == 0:
        for cols in rounds:
            reports.append(tuner.round(*cols, buffer=buffer))
        if group is not None:
            group.stop()
    else:
        assert group is not None
        rounds_done = tuner.follow(buffer)
        assert rounds_done == len(rounds)
    cpu = torch.tensor([time.process_time() - cpu0], dtype=torch.float64)
    main_cpu = torch.tensor([time.thread_time() - main0], dtype=torch.float64)
    if group is not None:  # CPU seconds of all ranks, every round (warm-up included)
        cpu = group.all_reduce_sum(cpu)
        torch.distributed.all_reduce(main_cpu, op=torch.distributed.ReduceOp.MAX)
    if rank == 0:
        measured = reports[1:]
        samples = sum(r.samples * r.epochs for r in measured)
        seconds = sum(r.seconds for r in measured)
        Path(args.out).write_text(json.dumps({
            "samples_per_second": samples / seconds, "seconds": seconds, "samples": samples,
            "threads": torch.get_num_threads(), "world": world, "loss": measured[-1].loss,
            "samples_per_cpu_second": sum(r.samples * r.epochs for r in reports)
            / float(cpu[0]),
            # a quiet machine's wall can't beat the busiest main thread nor all CPU-s / cores
            "quiet_bound_per_second": sum(r.samples * r.epochs for r in reports)
            / max(float(main_cpu[0]), float(cpu[0]) / (os.cpu_count() or 1))}))
    if group is not None:
        group.close()


def run_config(name: str, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """Start one configuration as a user would and read its figures."""
    common = ["-m", "bench.ddp", "--worker", "--out", str(out), "--fresh", str(args.fresh),
              "--rounds", str(args.rounds), "--batch", str(args.batch), "--factors",
              str(args.factors), "--module", args.module, "--hidden", str(args.hidden),
              "--users", str(args.users), "--items", str(args.items), "--capacity",
              str(args.capacity)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    optimizer = "adam" if name.endswith("-adam") else "sparse_adam"
    if name.startswith("ddp"):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(args.nproc), *common, "--optimizer", optimizer]
    else:
        cmd = [sys.executable, *common, "--optimizer", optimizer,
               "--threads", "1" if name == "one-1t" else "0"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=args.timeout)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def _model(args: argparse.Namespace) -> str:
    return (f"MF {args.factors} factors" if args.module == "mf" else
            f"two-tower {args.factors} factors, towers {args.factors}-{args.hidden}-32")


def _fmt(values: list[float], digits: int = 2) -> str:
    return (f"{statistics.median(values):.{digits}f} "
            f"[{min(values):.{digits}f}-{max(values):.{digits}f}]")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    parser.add_argument("--optimizer", default="adam", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--fresh", type=int, default=200_000, help="fresh samples a round")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds")
    parser.add_argument("--batch", type=int, default=4096, help="global minibatch")
    parser.add_argument("--module", choices=("mf", "two_tower"), default="mf",
                        help="torch model (lifelong finetune --kind)")
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64,
                        help="two_tower: width of the towers' hidden layer (its default)")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--capacity", type=int, default=100_000, help="replay, all ranks")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0, help="per configuration")
    parser.add_argument("--label", default="latest", help="bench/results/ddp-<label>.json")
    parser.add_argument("--configs", default="one,one-1t,ddp,ddp-adam",
                        help="comma-separated subset of one, one-1t, ddp, ddp-adam (interleaved)")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    names = tuple(n for n in ("one", "one-1t", "ddp", "ddp-adam")
                  if n in args.configs.split(","))
    got: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for name in names:
                start = time.perf_counter()
                got[name].append(run_config(name, args, Path(tmp) / f"{name}{rep}.json"))
                last = got[name][-1]
                print(f"repeat {rep + 1} {name:<8} {last['samples_per_second']:>10.0f} "
                      f"samples/s, {last['samples_per_cpu_second']:>10.0f} per CPU-second "
                      f"({last['threads']:.0f} threads/process, "
                      f"{time.perf_counter() - start:.0f} s with start-up; load "
                      f"{os.getloadavg()[0]:.1f})", flush=True)
                last["load_average"] = os.getloadavg()[0]
    sps = {n: [g["samples_per_second"] for g in got[n]] for n in names}
    cps = {n: [g["samples_per_cpu_second"] for g in got[n]] for n in names}
    pairs = {"vs_one": ("ddp", "one"), "vs_one_1t": ("ddp", "one-1t"),
             "adam_vs_one_1t": ("ddp-adam", "one-1t")}
    ratios = {key: [d / o for d, o in zip(sps[a], sps[b], strict=True)]
              for key, (a, b) in pairs.items() if a in sps and b in sps}
    cpu_ratios = {key: [o / d for d, o in zip(cps[a], cps[b], strict=True)]
                  for key, (a, b) in pairs.items() if a in cps and b in cps}
    qbs = {n: [g["quiet_bound_per_second"] for g in got[n]] for n in names}
    quiet_ratios = {key: [d / o for d, o in zip(qbs[a], qbs[b], strict=True)]
                    for key, (a, b) in pairs.items() if a in qbs and b in qbs}
    print(f"fine-tune rounds, {args.fresh} fresh + {args.fresh} replayed a round, global batch "
          f"{args.batch}, {_model(args)}, {args.repeats} interleaved repeats, "
          f"{os.cpu_count()} CPUs")
    for name in names:
        print(f"  {name:<8} {_fmt(sps[name], 0)} samples/s, {_fmt(cps[name], 0)} samples "
              f"per CPU-second (all ranks), quiet bound {_fmt(qbs[name], 0)} samples/s")
    for key, (a, b) in pairs.items():
        if key in ratios:
            print(f"  {a} ({args.nproc} ranks) / {b}: samples/s {_fmt(ratios[key])}x; CPU-s a "
                  f"sample {_fmt(cpu_ratios[key])}x; quiet bound {_fmt(quiet_ratios[key])}x")
    result = {k: statistics.median(v) for k, v in ratios.items()}
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"ddp-{args.label}.json").write_text(json.dumps(
        {**result, "args": {k: v for k, v in vars(args).items() if k != "worker"},
         "ratios": ratios, "cpu_ratios": cpu_ratios, "quiet_bound_ratios": quiet_ratios,
         "runs": got, "cpus": os.cpu_count()}, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
