"""Wall-clock speed-up at equal error of fstmatch's estimators over the paper's (``reference``),
with errors measured against truth maps (a far larger budget), on one model and a few faces.

Error metric: relative L2 error of a map against the truth map of the same face, debiased for the
truth's own sampling noise::

    err = sqrt(max(||phi - phi_T||^2 - sum se_T^2, 0)) / sqrt(||phi_T||^2 - sum se_T^2)

The truth is the post-stratified antithetic walk (``permutation``: unbiased, with calibrated
standard errors) at ``--truth-budget`` orderings. Every estimator runs in this process on one torch
thread through the same engine (BatchNorm folded, channels_last, batch 256; the incremental walk
where it applies), ``--reps`` seeds per budget; a run's time is the whole ``shapley()`` call (the
regressions' fit included). ``reference`` is the paper's sampler (per cell, m orderings, two
forwards each) run by this engine, so the speed-up is the estimator's alone, not the engine's.

Equal error: the median error and median time over faces and seeds of every (estimator, budget).
The paper's estimator is a plain Monte Carlo mean per cell (m i.i.d. marginals), so its error falls
as m^-1/2 (checked between the m measured: the table's ``reference`` rows); the time it needs for
an estimator's error e is ``t_ref(m) * (err_ref(m) / e)^2`` from its largest m measured.
Speed-up = that time / the estimator's time (the same for forwards). Between fstmatch's estimators,
``equal_error`` compares them at each one's measured errors, interpolating the other log-log between
its budgets (no extrapolation: None outside the budgets measured).

Models: ``--model torchvision-resnet18`` (random weights, ``torch.manual_seed(0)``; the engine's
batched path), ``--model fstmatch-resnet18`` (fstmatch's ResNet-18 w64, random, seed 0: the walk
runs incrementally above 50M multiply-adds), or a checkpoint (run dir / .safetensors, e.g. the tiny
demo's ``det``). Faces: the first test faces of ``--data`` (manifest), aligned at ``--size`` px.

  python benchmarks/shapley_speedup.py --model torchvision-resnet18 --data PREP --size 112 --grid 8 \\
      --images 2 --truth-budget 256 --ref-m 5,20 --budgets 4,16 --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def build(name: str, size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "torchvision-resnet18":
        import torchvision

        return torchvision.models.resnet18(num_classes=2).eval()
    if name == "fstmatch-resnet18":
        from fstmatch.models import create_model

        return create_model("resnet18", num_classes=2, width=64).eval()
    from fstmatch.models import load_model

    return load_model(Path(name)).eval()


def error(values: np.ndarray, truth: np.ndarray, truth_se: np.ndarray) -> float:
    t_var = float((truth_se**2).sum())
    e2 = float(((values - truth) ** 2).sum()) - t_var
    return math.sqrt(max(e2, 0.0) / max(float((truth**2).sum()) - t_var, 1e-30))


def time_at(points: list[tuple[float, float, float]], target: float) -> float | None:
    """Time at error ``target`` from (error, time, forwards) points of increasing budget, log-log
    interpolation between the two budgets around it; None outside them."""
    for (e0, t0, _), (e1, t1, _) in itertools.pairwise(points):
        if e1 <= target <= e0 and e0 > e1 > 0:
            w = math.log(e0 / target) / math.log(e0 / e1)
            return math.exp((1 - w) * math.log(t0) + w * math.log(t1))
    return None


def speedups(table: dict, ref_m: list[str], estimators: list[str], budgets: list[str]) -> tuple[dict, dict]:
    """(speed-up over the paper's estimator at each estimator's error, wall clock between estimators)."""
    ref = table[f"reference@{ref_m[-1]}"]
    out = {}
    for est in estimators:
        for b in budgets:
            row = table[f"{est}@{b}"]
            factor = (ref["err"] / max(row["err"], 1e-30)) ** 2
            out[f"{est}@{b}"] = {"err": row["err"], "reference_m_needed": float(ref_m[-1]) * factor,
                                 "wall_clock": ref["seconds"] * factor / row["seconds"],
                                 "forwards": ref["forwards"] * factor / row["forwards"]}
    between = {}
    for a in estimators:
        for other in estimators:
            if a == other:
                continue
            pts = [(table[f"{other}@{b}"]["err"], table[f"{other}@{b}"]["seconds"], 0.0) for b in budgets]
            for b in budgets:
                t = time_at(pts, table[f"{a}@{b}"]["err"])
                between[f"{other} / {a}@{b}"] = None if t is None else t / table[f"{a}@{b}"]["seconds"]
    return out, between


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="torchvision-resnet18, fstmatch-resnet18 or a checkpoint path")
    ap.add_argument("--data", type=Path, required=True, help="manifest.jsonl (or its folder): test faces")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--grid", type=int, default=8)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--truth-budget", type=int, default=256, help="orderings of the walk for the truth maps")
    ap.add_argument("--ref-m", default="5,20", help="orderings per cell of the paper's estimator")
    ap.add_argument("--budgets", default="4,16", help="orderings' worth per image of the other estimators")
    ap.add_argument("--estimators", default="spline,permutation")
    ap.add_argument("--reps", type=int, default=1, help="seeds per budget")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from fstmatch.explain import shapley
    from shapley_inputs import load_faces

    model = build(args.model, args.size)
    images, labels, ids = load_faces(args.data, args.images, args.size)
    g = args.grid
    runs: dict[str, list[tuple[int, float, float, int]]] = {}  # name@budget -> (image, err, seconds, forwards)
    for i in range(args.images):
        x, t = images[i:i + 1], labels[i:i + 1]
        t0 = time.perf_counter()
        truth = shapley(model, x, t, grid=g, estimator="permutation", budget=args.truth_budget, seed=987654)
        print(f"image {i} truth: {truth.total_forward} forwards {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        tv, ts = truth.values[0].numpy(), truth.stderr[0].numpy()
        plan = [("reference", int(m)) for m in args.ref_m.split(",")]
        plan += [(e, int(b)) for e in args.estimators.split(",") for b in args.budgets.split(",")]
        for rep in range(args.reps):
            for est, b in plan:
                t0 = time.perf_counter()
                res = shapley(model, x, t, grid=g, estimator=est, budget=b, seed=1000 * rep + 17 * i + 1)
                sec = time.perf_counter() - t0
                err = error(res.values[0].numpy(), tv, ts)
                runs.setdefault(f"{est}@{b}", []).append((i, err, sec, res.total_forward))
                print(f"  {est:<11} budget {b:>4}: err {err:.3f}  {sec:6.1f} s  {res.total_forward:>6} fwd",
                      file=sys.stderr, flush=True)
    table = {k: {"err": statistics.median(r[1] for r in v), "seconds": statistics.median(r[2] for r in v),
                 "forwards": statistics.median(r[3] for r in v), "runs": len(v)} for k, v in runs.items()}
    speedup, between = speedups(table, args.ref_m.split(","), args.estimators.split(","), args.budgets.split(","))
    ref = [table[f"reference@{m}"] for m in args.ref_m.split(",")]
    law = {f"m={a}->{b}": {"err_ratio": ra["err"] / rb["err"], "expected": math.sqrt(int(b) / int(a))}
           for (a, ra), (b, rb) in itertools.pairwise(zip(args.ref_m.split(","), ref))}
    report = {"table": table, "runs": {k: [dict(zip(("image", "err", "seconds", "forwards"), r)) for r in v]
                                       for k, v in runs.items()},
              "speedup_over_reference": speedup, "reference_error_law": law,
              "wall_clock_at_equal_error": between,
              "setup": {**{k: str(v) for k, v in vars(args).items()}, "ids": ids, "threads": 1,
                        "torch": torch.__version__, "load": os.getloadavg(),
                        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
