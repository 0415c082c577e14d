"""Forwards per second of a DeepfakeBench detector under the Shapley engine (CPU, fp32).

``deepfakebench:xception`` (random init, seed 0; the weights do not change the cost) at its native
256 px with a 16x16 grid: the time of ``fstmatch.explain.shapley`` on one synthetic image (its
batched path: the incremental ResNet walk does not apply), divided into the forwards it reports;
and, side by side, plain batched ``model(x)`` forwards of the same model and of the ResNet-18
(width 64, 224 px) the project's other Shapley figures use. Each figure is the median of
``--repeats`` timed runs after one warm-up.

Usage: .venv/bin/python benchmarks/deepfakebench_bench.py [--threads 1] [--repeats 3] [--batch 64]
       [--arch deepfakebench:xception] [--quick] [--json FILE]
(``--quick``: 64 px, 4x4 grid, one repeat: a smoke test of the script, not a measurement.)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def make_images(n: int, size: int, seed: int) -> torch.Tensor:
    """shapley_bench's smooth synthetic images, (n, 3, size, size) in [0, 1]."""
    sys.path.insert(0, str(HERE))
    from shapley_bench import make_images as smooth_images

    return smooth_images(n, size, seed)


def forwards_per_second(model: torch.nn.Module, size: int, batch: int, n_batches: int, repeats: int) -> list[float]:
    """Plain no-grad forwards of ``batch`` images, ``n_batches`` per timed run."""
    model = model.eval().to(memory_format=torch.channels_last)
    x = make_images(batch, size, seed=1).contiguous(memory_format=torch.channels_last)
    rates = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(n_batches):
                model(x)
            rates.append(batch * n_batches / (time.perf_counter() - t0))
    return rates


def engine_forwards_per_second(model: torch.nn.Module, size: int, grid: int, batch: int, orderings: int,
                               repeats: int) -> tuple[list[float], int]:
    """``shapley()`` on one image: reported forwards / wall time, per run."""
    from fstmatch.explain import shapley

    x = make_images(1, size, seed=2)
    rates, n_forward = [], 0
    shapley(model, x, [1], grid=2, budget=2, batch_size=batch, seed=0)  # warm-up (a few forwards)
    for r in range(repeats):
        t0 = time.perf_counter()
        res = shapley(model, x, [1], grid=grid, budget=orderings, batch_size=batch, seed=r)
        n_forward = int(res.total_forward)
        rates.append(n_forward / (time.perf_counter() - t0))
    return rates, n_forward


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="deepfakebench:xception")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--orderings", type=int, default=2, help="orderings per engine run (one antithetic pair)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from fstmatch.explain import _incremental
    from fstmatch.models import create_model

    size, grid, repeats = (64, 4, 1) if args.quick else (256, 16, args.repeats)
    torch.manual_seed(0)
    model = create_model(args.arch).eval()
    torch.manual_seed(0)
    resnet = create_model("resnet18", num_classes=2, width=64).eval()
    out: dict = {"arch": args.arch, "size": size, "grid": grid, "batch": args.batch, "threads": args.threads,
                 "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                 "incremental_path": _incremental.supports(model)}
    rates, n_forward = engine_forwards_per_second(model, size, grid, args.batch, args.orderings, repeats)
    out["engine"] = {"forwards_per_s": rates, "median": statistics.median(rates), "forwards_per_run": n_forward}
    print(f"{args.arch} {size}px grid {grid}: shapley() {statistics.median(rates):.2f} forwards/s "
          f"(runs {', '.join(f'{r:.2f}' for r in rates)}; {n_forward} forwards each)", flush=True)
    n_batches = 1 if args.quick else 2
    for name, net, px in ((args.arch, model, size), ("resnet18 w64", resnet, 224 if not args.quick else 64)):
        rates = forwards_per_second(net, px, args.batch, n_batches, repeats)
        out[f"plain {name} {px}px"] = {"forwards_per_s": rates, "median": statistics.median(rates)}
        print(f"plain {name} {px}px batch {args.batch}: {statistics.median(rates):.2f} forwards/s "
              f"(runs {', '.join(f'{r:.2f}' for r in rates)})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
