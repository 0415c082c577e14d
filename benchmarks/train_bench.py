"""Training throughput of the det model on this machine (issue 4; not a timed test).

Four configurations, each a few optimizer steps after warm-up:
  compute only   - pre-loaded tensors (no data loading in the loop), fp32 and bf16 autocast;
  with loader    - FaceDataset (alignment + augmentation) + DataLoader feeding the same model.
The ratios say whether loading or compute bounds training, and what bf16 buys. Last, the loader
alone over the set twice with the face cache (``cache_mb``, no augmentation): the first pass
decodes and aligns, the second reads memory — the CPU a training's later epochs no longer spend.

    .venv/bin/python benchmarks/train_bench.py --data PREP/manifest.jsonl [--width 16 --canvas 64]

Without --data a tiny hand-made set (tests/train/conftest.py) is written to a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def steps_per_second(model, opt, batches, amp: bool, warmup: int = 2) -> float:
    """Images per second over ``batches`` (an iterable of (x, y)), excluding ``warmup`` steps."""
    n, t0 = 0, None
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            t0, n = time.perf_counter(), 0
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if amp else contextlib.nullcontext()
        with ctx:
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="manifest.jsonl (default: a tiny hand-made set)")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--canvas", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=8, help="timed steps per configuration (after 2 warm-up)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--channels-last", action="store_true")
    args = p.parse_args()

    from fstmatch.data import AugmentConfig, FaceDataset, Geometry, build_augment, read_manifest
    from fstmatch.models import create_model

    manifest = args.data
    if manifest is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "train"))
        from conftest import make_manifest  # the tests' tiny set

        manifest = make_manifest(Path(tempfile.mkdtemp(prefix="train-bench-")))
    rows = [r for r in read_manifest(manifest) if r["split"] == "train"]
    total = (args.steps + 2) * args.batch_size
    rows = (rows * (total // len(rows) + 1))[:total]
    ds = FaceDataset(rows, Path(manifest).parent, geometry=Geometry(canvas=args.canvas),
                     augment=build_augment(AugmentConfig(enabled=args.augment), seed=0))

    def loader():
        return torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                           num_workers=args.workers)

    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    preloaded = [(b["image"].contiguous(memory_format=fmt), b["label"]) for b in loader()]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus, "
          f"{platform.processor() or platform.machine()}; det resnet18 width {args.width}, canvas {args.canvas}, "
          f"batch {args.batch_size}, {args.steps} timed steps, augment {args.augment}, workers {args.workers}")
    results = {}
    for amp in (False, True):
        for loading in (False, True):
            torch.manual_seed(0)
            model = create_model("det", width=args.width).to(memory_format=fmt)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            batches = ((b["image"].contiguous(memory_format=fmt), b["label"]) for b in loader()) if loading else preloaded
            ips = steps_per_second(model, opt, batches, amp)
            key = ("bf16" if amp else "fp32", "loader" if loading else "preloaded")
            results[key] = ips
            print(f"{key[0]:5s} {key[1]:9s} {ips:8.1f} img/s", flush=True)
    for prec in ("fp32", "bf16"):
        print(f"{prec}: loader/preloaded = {results[(prec, 'loader')] / results[(prec, 'preloaded')]:.2f}")
    for src in ("preloaded", "loader"):
        print(f"{src}: bf16/fp32 = {results[('bf16', src)] / results[('fp32', src)]:.2f}")
    t = time.perf_counter()
    for _ in loader():
        pass
    print(f"loader alone: {len(ds) / (time.perf_counter() - t):.1f} img/s")
    cached = FaceDataset(rows, Path(manifest).parent, geometry=Geometry(canvas=args.canvas), cache_mb=1024)
    rates = []
    for _ in range(2):  # in-process (num_workers 0): the cache lives in this dataset
        t = time.perf_counter()
        for i in range(len(cached)):
            cached[i]
        rates.append(len(cached) / (time.perf_counter() - t))
    print(f"face cache, no augmentation, 1 process: first pass {rates[0]:.1f} img/s, second {rates[1]:.1f} img/s "
          f"({rates[1] / rates[0]:.0f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
