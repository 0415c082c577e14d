"""Shapley engine on a CUDA GPU: forwards per second by precision, how much bf16/TF32 move the maps,
and (optionally) high-budget fp32 maps to serve as the "truth" for CPU estimator studies.

One run, side by side, same model, images and orderings:

1. forwards/s of ``fstmatch.explain.shapley`` (antithetic walk, 16x16 grid, 224 px) with strict
   fp32, TF32 convolutions, and bf16 weights+inputs (``dtype=torch.bfloat16``);
2. for TF32 and bf16: cosine of their maps to the strict-fp32 maps at the same orderings, and the
   relative L2 difference next to the fp32 run's own sampling error (``sqrt(sum stderr^2)/||phi||``);
3. ``--truth-seconds S``: spend about S seconds on strict-fp32 maps with as many antithetic orderings
   as fit (seed 12345, independent of the other runs) and write them to ``--out`` (.npz: values,
   stderr, n_forward, orderings, ids);
4. ``--walks N --walks-out FILE``: the value of every step of N antithetic orderings (seed 777) per
   image, strict fp32 (.npz: orders (N, G*G), wv (images, N, G*G-1), v_empty, v_full, labels), for
   offline estimator studies (``benchmarks/shapley_estimators.py``).

Usage (on a GPU machine):
  python benchmarks/shapley_gpu.py --checkpoint RUN_OR_SAFETENSORS --faces FACES.npz --out truth.npz
``--faces`` holds ``images`` (N, 3, H, W) uint8 and ``labels`` (N,); without it, random-init
ResNet-18 and synthetic images are used (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def timed(model, images, targets, **kw):
    from fstmatch.explain import shapley

    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    res = shapley(model, images, targets, **kw)
    sync()
    wall = time.perf_counter() - t0
    return res, wall, res.total_forward / wall


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def cosine(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    a, b = a.flatten(1), b.flatten(1)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--faces", type=Path, help=".npz with images (N,3,H,W) uint8 and labels (N,)")
    ap.add_argument("--orderings", type=int, default=32, help="orderings per image for the precision runs")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--grid", type=int, default=16)
    ap.add_argument("--device", default="cuda", help="cpu only to smoke-test the script")
    ap.add_argument("--truth-seconds", type=float, default=0.0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--walks", type=int, default=0)
    ap.add_argument("--walks-out", type=Path)
    args = ap.parse_args()
    from fstmatch.models import create_model, load_model

    dev = torch.device(args.device)
    if args.checkpoint:
        model = load_model(args.checkpoint).eval().to(dev)
    else:
        torch.manual_seed(0)
        model = create_model("resnet18", num_classes=2, width=64).eval().to(dev)
    if args.faces:
        data = np.load(args.faces)
        images = torch.from_numpy(data["images"]).float().div(255)
        targets = torch.from_numpy(data["labels"]).long()
        ids = [str(x) for x in data["ids"]] if "ids" in data else []
    else:
        images, targets, ids = torch.rand(2, 3, 224, 224), torch.tensor([0, 1]), []
    images = images.to(dev)
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "images": list(images.shape)}))
    kw = dict(grid=args.grid, budget=args.orderings, batch_size=args.batch, seed=7)
    timed(model, images[:1], targets[:1], **{**kw, "n_permutations": 2})  # warm-up (cuDNN autotune, allocator)
    out, rate32 = {}, 0.0
    for name in ("fp32", "tf32", "bf16"):
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = name == "tf32"
        res, wall, rate = timed(model, images, targets, dtype=torch.bfloat16 if name == "bf16" else None, **kw)
        out[name] = res
        row = {"precision": name, "forwards": res.total_forward, "seconds": round(wall, 2), "fwd_per_s": round(rate)}
        if name != "fp32":
            ref = out["fp32"]
            err32 = (ref.stderr**2).flatten(1).sum(1).sqrt() / ref.values.flatten(1).norm(dim=1)
            row |= {"cosine_to_fp32": [round(c, 5) for c in cosine(res.values, ref.values)],
                    "rel_l2_diff_to_fp32": [round(rel_l2(a, b), 4) for a, b in zip(res.values, ref.values, strict=True)],
                    "fp32_own_rel_l2_error": [round(float(e), 4) for e in err32]}
        print(json.dumps(row), flush=True)
        if name == "fp32":
            rate32 = rate
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    if args.truth_seconds > 0:
        per_ordering = images.shape[0] * (args.grid**2 - 1) / rate32
        n = max(2, int(args.truth_seconds / per_ordering) // 2 * 2)
        res, wall, rate = timed(model, images, targets, grid=args.grid, budget=n, batch_size=args.batch, seed=12345)
        err = (res.stderr**2).flatten(1).sum(1).sqrt() / res.values.flatten(1).norm(dim=1)
        print(json.dumps({"truth_orderings": n, "seconds": round(wall, 1), "fwd_per_s": round(rate),
                          "truth_rel_l2_error": [round(float(e), 4) for e in err]}), flush=True)
        if args.out:
            np.savez(args.out, values=res.values.numpy(), stderr=res.stderr.numpy(), n_forward=res.n_forward.numpy(),
                     orderings=n, seed=12345, ids=np.array(ids), v_full=res.v_full.numpy(), v_empty=res.v_empty.numpy())


    if args.walks:
        dump_walks(model, images, targets, args.grid, args.walks, args.batch, args.walks_out)


def dump_walks(model, images, targets, grid: int, n_walks: int, batch: int, out: Path) -> None:
    from fstmatch.explain import _utils

    p = grid * grid
    gen = torch.Generator().manual_seed(777)
    base = [torch.randperm(p, generator=gen) for _ in range(n_walks // 2)]
    orders = torch.stack([o for b in base for o in (b, b.flip(0))])
    t0 = time.perf_counter()
    with _utils.prepared_model(model, optimize=True, dtype=None, device=images.device, probe=images[:1]) as (fn, dt, _):
        vf = _utils.ValueFunction(fn, images, torch.zeros_like(images), targets, grid, batch_size=batch,
                                  input_dtype=dt, channels_last=True)
        ids = torch.arange(images.shape[0])
        ends = vf.evaluate(ids, torch.stack([torch.zeros(p, dtype=torch.bool), torch.ones(p, dtype=torch.bool)]))
        wv = torch.cat([vf.walks(ids, orders[c:c + 64]) for c in range(0, n_walks, 64)], dim=1)
    print(json.dumps({"walks": n_walks, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    np.savez_compressed(out, orders=orders.short().numpy(), wv=wv.float().numpy(), v_empty=ends[:, 0].numpy(),
                        v_full=ends[:, 1].numpy(), labels=targets.numpy())


if __name__ == "__main__":
    main()
