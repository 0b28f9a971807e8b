"""Fine-tune overhead: a full ``FineTuner.round`` vs a bare torch loop on the same model.

The full round maps fresh string ids through the id tables, samples the replay buffer,
packs and copies the round to the device, trains, and adds the fresh samples to the
buffer. The baseline trains the same module class with the same optimizer, batch size,
loss and number of samples on data that is already on the device as tensors. Both run in
this process, after a warm-up; best of ``--repeat``. Data: Zipf-skewed users and items.

    python -m bench.finetune --batch 65536 --samples 4000000 --device auto
    python -m bench.finetune --batch 8192 --samples 200000          # small, for a CPU
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from learning.device import pick_device
from learning.finetune import FineTuner, make_optimizers
from learning.replay import ReplayBuffer
from learning.torch_models import DeepRecommender


def make_batch(rng: np.random.Generator, n: int, n_users: int, n_items: int,
               t0: float) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    users = (rng.zipf(1.2, n) - 1) % n_users
    items = (rng.zipf(1.2, n) - 1) % n_items
    values = rng.uniform(1.0, 5.0, n).astype(np.float32)
    return ([f"u{k}" for k in users.tolist()], [f"i{k}" for k in items.tolist()], values,
            t0 + np.arange(n, dtype=np.float64))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(rec: DeepRecommender, args: argparse.Namespace, device: torch.device,
              amp: bool) -> float:
    """Seconds for ``--samples`` samples x epochs through a plain loop on device tensors."""
    module = type(rec.module)(rec.module.n_users, rec.module.n_items, args.factors, seed=1,
                              **({"hidden": 64, "out_dim": 32} if args.model == "two_tower"
                                 else {})).to(device)
    opts = make_optimizers(module, args.optimizer, args.lr)
    sparse = args.optimizer in ("sparse_adam", "adagrad")
    gen = torch.Generator(device=device).manual_seed(0)
    n = args.samples
    rng = np.random.default_rng(1)  # same skew as the round's data, already on the device
    users = torch.from_numpy((rng.zipf(1.2, n) - 1) % rec.users.rows).to(device)
    items = torch.from_numpy((rng.zipf(1.2, n) - 1) % rec.items.rows).to(device)
    values = torch.from_numpy(rng.uniform(1.0, 5.0, n).astype(np.float32)).to(device)

    def run() -> float:
        sync(device)
        start = time.perf_counter()
        total = torch.zeros((), device=device)
        for _ in range(args.epochs):
            perm = torch.randperm(n, device=device, generator=gen)
            for s in range(0, n, args.batch):
                idx = perm[s : s + args.batch]
                u, i, v = users[idx], items[idx], values[idx]
                for opt in opts:
                    opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    pred, l2 = module.fit_terms(u, i, sparse=sparse)
                sse = (pred.float() - v).square().sum()
                loss = sse / v.shape[0] + args.weight_decay * l2.float().mean()
                loss.backward()
                for opt in opts:
                    opt.step()
                total += sse.detach()
        float(total)
        sync(device)
        return time.perf_counter() - start

    run()  # warm-up
    return min(run() for _ in range(args.repeat))


def full_round(rec: DeepRecommender, args: argparse.Namespace,
               device: torch.device) -> tuple[float, FineTuner]:
    ft = FineTuner(rec, lr=args.lr, weight_decay=args.weight_decay, optimizer=args.optimizer,
                   batch_size=args.batch, epochs_per_round=args.epochs,
                   replay_ratio=args.replay_ratio, device=str(device), amp=args.amp)
    buf = ReplayBuffer(capacity=max(args.samples, 20_000), recent_window=10_000, seed=0)
    n_fresh = round(args.samples / (1.0 + args.replay_ratio))
    rng = np.random.default_rng(0)
    batches = [make_batch(rng, n_fresh, args.users, args.items, 1e6 * k)
               for k in range(args.repeat + 1)]
    ft.round(*batches[0], buffer=buf)  # warm-up: registers ids, grows tables, fills replay
    times = []
    for batch in batches[1:]:
        sync(device)
        start = time.perf_counter()
        report = ft.round(*batch, buffer=buf)
        sync(device)
        times.append(time.perf_counter() - start)
        assert report.samples == args.samples, report
    return min(times), ft


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=2_000_000, help="per round (all kinds)")
    parser.add_argument("--batch", type=int, default=65_536)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", choices=("mf", "two_tower"), default="mf")
    parser.add_argument("--optimizer", default="sparse_adam")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--replay-ratio", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: keep)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    rec = DeepRecommender(args.model, n_factors=args.factors, capacity_hint=1024, seed=0)
    full, ft = full_round(rec, args, device)
    base = bare_loop(rec, args, device, ft.amp)
    n = args.samples * args.epochs
    ratio = base / full
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"fine-tune round vs bare torch loop on {device} ({name}), model {args.model}, "
          f"{args.factors} factors, {args.optimizer}, amp={ft.amp}")
    print(f"  {args.samples} samples/round ({args.replay_ratio:g} replayed per fresh), "
          f"batch {args.batch}, {args.epochs} epoch(s), best of {args.repeat}")
    print(f"  bare torch loop   {n / base:>12.0f} samples/s")
    print(f"  fine-tune round   {n / full:>12.0f} samples/s")
    print(f"  ratio (round / bare throughput) = {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
