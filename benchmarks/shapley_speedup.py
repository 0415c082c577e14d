"""Wall-clock speedup at equal error: the paper's Shapley estimator as a plain PyTorch script runs it
vs ``fstmatch.explain.shapley`` with its defaults, side by side on the same model and faces.

For each image, two fresh processes run one after the other (so load drift hits both alike),
each timing only the ``shapley`` call, one torch thread each:

- **paper**: ``method="reference"`` (per cell, m orderings, two forwards each: docs/method.md §3) the way a
  plain script runs it: eager model, default memory layout, batch 64 (``optimize=False``), no
  allocator settings;
- **engine**: the defaults (``--method``, default ``spline``: size-spline KernelSHAP; BatchNorm folded, channels_last, incremental walks on ResNets for the walk methods) in a process started as the ``fstmatch`` CLI starts
  itself (with the glibc allocator settings).

Both estimators are unbiased and report per-cell standard errors, so the expected squared error of
a map is ``sum(stderr**2)``; error = relative L2, ``sqrt(sum(stderr**2)) / ||phi||``, and
``sum(stderr**2) * forwards`` does not depend on the budget. At equal error the paper needs
``C_paper / C_engine`` times the engine's forwards (algorithmic factor), and each forward costs
``rate_engine / rate_paper`` times more (implementation factor); the wall-clock speedup is their
product. ``||phi||^2`` comes from the two runs pooled by inverse variance. With ``--truth NPZ``
(high-budget maps, e.g. from ``benchmarks/shapley_gpu.py``), errors against it are reported too:
``||phi_hat - phi_T||^2 - sum(stderr_T^2)``, and the stderr calibration
``||phi_paper - phi_engine||^2 / (sum se_paper^2 + sum se_engine^2)`` (expect 1).

Usage:
  .venv/bin/python benchmarks/shapley_speedup.py --checkpoint RUN --data MANIFEST [--images 4]
      [--ref-m 2] [--orderings 32] [--truth truth.npz] [--json out.json]
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
import torch

from fstmatch.cli import ALLOCATOR_ENV  # the settings the CLI re-executes itself with

HERE = Path(__file__).resolve().parent


def worker(args: argparse.Namespace) -> None:
    """One estimator on one image in this (fresh) process; writes values, stderr, forwards, seconds."""
    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from fstmatch.explain import shapley
    from shapley_inputs import build_model, load_faces

    model = build_model(checkpoint=args.checkpoint)
    images, labels, ids = load_faces(args.data, 1, 224, args.image)
    if args.worker == "paper":
        kw = dict(method="reference", n_permutations=args.ref_m, optimize=False, batch_size=64, seed=100 + args.image)
    else:
        kw = dict(n_permutations=args.orderings, seed=200 + args.image, method=args.method)
    t0 = time.perf_counter()
    res = shapley(model, images, labels, grid=16, **kw)
    wall = time.perf_counter() - t0
    np.savez(args.out, values=res.values[0].numpy(), stderr=res.stderr[0].numpy(), forwards=res.total_forward,
             seconds=wall, id=ids[0], label=int(labels[0]))


def spawn(args: argparse.Namespace, which: str, image: int, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV}
    env["OMP_NUM_THREADS"] = "1"
    if which == "engine":
        env.update(ALLOCATOR_ENV)
    cmd = [sys.executable, __file__, "--worker", which, "--image", str(image), "--out", str(out),
           "--checkpoint", str(args.checkpoint), "--data", str(args.data), "--ref-m", str(args.ref_m),
           "--orderings", str(args.orderings), "--method", args.method]
    subprocess.run(cmd, env=env, check=True)
    d = np.load(out)
    r = {k: d[k] for k in ("values", "stderr")} | {"forwards": int(d["forwards"]), "seconds": float(d["seconds"]),
                                                  "id": str(d["id"])}
    r["rate"] = r["forwards"] / r["seconds"]
    r["sum_var"] = float((r["stderr"] ** 2).sum())
    print(f"  image {image} {which:<6} {r['forwards']:>6} forwards {r['seconds']:7.1f} s {r['rate']:6.1f} fwd/s",
          file=sys.stderr, flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True, help="detector run dir or .safetensors")
    ap.add_argument("--data", type=Path, required=True, help="manifest.jsonl: test-split faces")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--ref-m", type=int, default=2, help="orderings per cell of the paper's estimator")
    ap.add_argument("--orderings", type=int, default=32, help="orderings per image of the engine")
    ap.add_argument("--method", default="spline", help="engine estimator (default: the engine's default, spline; "
                    "the recorded 10.5x of 2026-11-26 was with permutation, then the default)")
    ap.add_argument("--truth", type=Path, help="npz with values/stderr (N, 16, 16) for the same faces")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--worker", choices=["paper", "engine"], help=argparse.SUPPRESS)
    ap.add_argument("--image", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    truth = np.load(args.truth) if args.truth else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.images):
            paper = spawn(args, "paper", i, Path(tmp) / f"p{i}.npz")
            engine = spawn(args, "engine", i, Path(tmp) / f"e{i}.npz")
            inv = 1 / paper["sum_var"] + 1 / engine["sum_var"]
            pooled = (paper["values"] / paper["sum_var"] + engine["values"] / engine["sum_var"]) / inv
            norm2 = max(float((pooled**2).sum()) - 1 / inv, 1e-30)
            c_paper, c_engine = paper["sum_var"] * paper["forwards"], engine["sum_var"] * engine["forwards"]
            row = {"image": i, "id": paper["id"], "norm_phi": norm2**0.5,
                   "paper": {k: paper[k] for k in ("forwards", "seconds", "rate")} | {"rel_l2_error": (paper["sum_var"] / norm2) ** 0.5},
                   "engine": {k: engine[k] for k in ("forwards", "seconds", "rate")} | {"rel_l2_error": (engine["sum_var"] / norm2) ** 0.5},
                   "algorithmic": c_paper / c_engine, "implementation": engine["rate"] / paper["rate"],
                   "calibration": float(((paper["values"] - engine["values"]) ** 2).sum()) / (paper["sum_var"] + engine["sum_var"])}
            row["wall_clock"] = row["algorithmic"] * row["implementation"]
            if truth is not None:
                t_val, t_var = truth["values"][i], float((truth["stderr"][i] ** 2).sum())
                t_norm2 = float((t_val**2).sum()) - t_var
                for k, r in (("paper", paper), ("engine", engine)):
                    e2 = float(((r["values"] - t_val) ** 2).sum()) - t_var
                    row[k]["rel_l2_error_vs_truth"] = max(e2, 0.0) ** 0.5 / t_norm2**0.5
                    row[k]["predicted_over_observed_vs_truth"] = r["sum_var"] / max(e2, 1e-30)
            rows.append(row)
            print(f"  image {i}: algorithmic {row['algorithmic']:.2f} x implementation {row['implementation']:.2f} = "
                  f"{row['wall_clock']:.2f}x (calibration {row['calibration']:.2f})", file=sys.stderr, flush=True)
    summary = {k: statistics.median(r[k] for r in rows) for k in ("algorithmic", "implementation", "wall_clock")}
    report = {"summary_median": summary, "images": rows,
              "setup": {"checkpoint": str(args.checkpoint), "ref_m": args.ref_m, "orderings": args.orderings,
                        "threads": 1, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
