"""fstmatch's Shapley estimators against the approximators people would pick instead, at equal
forward budgets, on real games (a trained model, aligned faces, zero baseline, grid cells).

Per game (model, grid, which logit) and budget (``--budgets`` in multiples of n = G*G forwards,
default 16n, 64n and the paper's 200n):

- fstmatch ``shapley()`` with its defaults and each ``estimator=`` (``budget`` chosen so the
  forwards match the budget: ``2 + P (n - 1)``);
- shapiq (``pip install -e '.[bench]'``): PermutationSamplingSV, KernelSHAP (paired),
  UnbiasedKernelSHAP, SVARM (``n <= --svarm-max`` players: it does not finish at 256 in shapiq's
  Python) and kADDSHAP (k = 2, ``n <= --kadd-max``), all given a game that evaluates coalitions with
  the same batched masked forwards as fstmatch (so wall times compare the estimators' own work);
- captum ShapleyValueSampling (``n_samples = budget / n`` permutations, its own masking).

Error = relative L2 error against a high-budget truth map (fstmatch's walk at ``--truth-orderings``,
or ``--truth NPZ`` with ``values`` and ``stderr`` (N, G, G) for the same faces, e.g. made on a GPU by
``benchmarks/shapley_gpu.py``), corrected for the truth's own variance:
``err^2 = sum_images(||phi - phi_T||^2 - sum se_T^2) / sum_images(||phi_T||^2 - sum se_T^2)``.
Printed per game and budget: each estimator's error, wall seconds, and the forward factor
``(err_peer / err_default)^2`` (how many times more forwards the peer needs for the default's error;
> 1: the default is ahead). ``--reps R`` repeats every estimator with R seeds (errors pooled).

Games used in benchmarks/results/shapley_peers.md:
  demo det 8x8 / 16x16:  --checkpoint DEMO/runs/det --data DEMO/prep --canvas 48 --grid 8|16
  cpu-small det:         --checkpoint RUN --data SMALL/prep --canvas 64 --grid 8|16
  demo source encoder:   --checkpoint DEMO/runs/source --target source --split train --fakes-only
  ResNet-18 224 px:      --checkpoint /tmp/bench-det --canvas 224 --grid 16 --truth T.npz (GPU truth)

Usage: .venv/bin/python benchmarks/shapley_peers.py --checkpoint RUN --data MANIFEST --canvas 48 --grid 8
       [--images 4] [--budgets 16,64,200] [--truth-orderings 2000 | --truth T.npz] [--truth-out T.npz]
       [--peers ...] [--methods ...] [--json OUT]
       .venv/bin/python benchmarks/shapley_peers.py --render A.json B.json ...   # markdown table
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fstmatch.explain import DEFAULT_ESTIMATOR, ESTIMATORS, _utils, shapley

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapley_inputs import build_model, load_faces

OURS = [m for m in ESTIMATORS if m not in ("reference", "exact")]
PEERS = ("PermutationSamplingSV", "KernelSHAP", "UnbiasedKernelSHAP", "SVARM", "kADDSHAP", "captum")


def ours(model, image, target, grid: int, budget: int, method: str | None, seed: int) -> np.ndarray:
    n = grid * grid
    p = max(2, round((budget - 2) / (n - 1)))
    kw = {} if method is None else {"estimator": method}
    if (method or DEFAULT_ESTIMATOR) == "permutation":  # the walk rounds its orderings up to even
        p += p % 2
    res = shapley(model, image, target, grid=grid, budget=p, seed=seed, **kw)
    return res.values[0].flatten().numpy()


class Game:
    """v(S) for one image as shapiq calls it: coalitions (k, n) bool numpy -> (k,) target logits,
    through fstmatch's batched masked forwards (folded model, batch 256)."""

    def __init__(self, fn, image: torch.Tensor, target: int, grid: int) -> None:
        self.vf = _utils.ValueFunction(fn, image, torch.zeros_like(image), torch.tensor([target]), grid,
                                       batch_size=256, input_dtype=None, channels_last=True)

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        c = torch.from_numpy(np.atleast_2d(coalitions).astype(bool))
        return self.vf.evaluate(torch.tensor([0]), c)[0].numpy()


def peer(name: str, fn, image, target: int, grid: int, budget: int, seed: int) -> np.ndarray:
    n = grid * grid
    if name == "captum":
        from captum.attr import ShapleyValueSampling

        mask = torch.arange(n).view(1, 1, grid, grid).repeat_interleave(image.shape[-2] // grid, 2)
        mask = mask.repeat_interleave(image.shape[-1] // grid, 3)
        torch.manual_seed(seed)
        with torch.inference_mode(False), torch.no_grad():
            attr = ShapleyValueSampling(fn).attribute(image, baselines=0.0, target=target, feature_mask=mask,
                                                      n_samples=max(1, budget // n), perturbations_per_eval=256)
        cell = attr[0, 0].reshape(grid, image.shape[-2] // grid, grid, -1)[:, 0, :, 0]
        return cell.flatten().double().numpy()
    from shapiq import approximator as ap

    kw = {"pairing_trick": True} if name in ("KernelSHAP", "UnbiasedKernelSHAP", "kADDSHAP") else {}
    if name == "kADDSHAP":
        kw["max_order"] = 2
    est = getattr(ap, name)(n=n, random_state=seed, **kw)
    iv = est.approximate(budget=budget, game=Game(fn, image, target, grid))
    return np.array([iv[(i,)] for i in range(n)], dtype=np.float64)


def render(paths: list[Path], ours: str = "spline") -> str:
    """A markdown table of saved ``--json`` reports: per game and budget, every estimator's error
    (seconds per map), and ``ours``' forward factor against the best peer, ``(err_best_peer / err_ours)^2``."""
    reports = [json.loads(p.read_text()) for p in paths]
    names = list(dict.fromkeys(k for r in reports for b in r["budgets"].values() for k in b if k != "default"))
    head = ["game", "budget", *names, f"best peer / {ours} (forwards)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        for budget, rows in r["budgets"].items():
            peers = {k: v["rel_l2_error"] for k, v in rows.items() if k in PEERS}
            best = min(peers, key=peers.get) if peers else None
            cells = []
            for k in names:
                v = rows.get(k)
                cells.append("–" if v is None else f"{v['rel_l2_error']:.3f} ({v['seconds_per_map']:.1f} s)")
            factor = (peers[best] / rows[ours]["rel_l2_error"]) ** 2 if best and ours in rows else math.nan
            lines.append(f"| {r['game']} | {budget} | " + " | ".join(cells) + f" | {factor:.2f}x ({best}) |")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--render"]:
        print(render([Path(p) for p in sys.argv[2:]]))
        return
    ap_ = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap_.add_argument("--checkpoint", type=Path, help="run dir or .safetensors (default: random-init ResNet-18)")
    ap_.add_argument("--data", type=Path, required=True, help="manifest.jsonl or its folder")
    ap_.add_argument("--name", default="", help="game name for the output")
    ap_.add_argument("--canvas", type=int, default=224)
    ap_.add_argument("--grid", type=int, default=8)
    ap_.add_argument("--images", type=int, default=4)
    ap_.add_argument("--split", default="test")
    ap_.add_argument("--fakes-only", action="store_true")
    ap_.add_argument("--compression", default="raw", help="\"\" for every compression")
    ap_.add_argument("--target", default="label", choices=("label", "source", "target"), help="explained class")
    ap_.add_argument("--budgets", default="16,64,200", help="forwards per map, in multiples of n = grid^2")
    ap_.add_argument("--reps", type=int, default=1)
    ap_.add_argument("--truth-orderings", type=int, default=2000)
    ap_.add_argument("--truth", type=Path, help="npz with values/stderr (N, G, G) for the same faces")
    ap_.add_argument("--truth-out", type=Path)
    ap_.add_argument("--methods", default="default," + ",".join(OURS))
    ap_.add_argument("--peers", default=",".join(PEERS))
    ap_.add_argument("--svarm-max", type=int, default=64)
    ap_.add_argument("--kadd-max", type=int, default=64)
    ap_.add_argument("--json", type=Path)
    args = ap_.parse_args()
    torch.set_num_threads(1)
    model = build_model(checkpoint=args.checkpoint)
    images, targets, ids = load_faces(args.data, args.images, args.canvas, split=args.split, fakes_only=args.fakes_only,
                                      compression=args.compression or None, key=args.target)
    g, n = args.grid, args.grid**2
    if args.truth:
        t = np.load(args.truth)
        t_val, t_se = t["values"].reshape(-1, n)[: args.images], t["stderr"].reshape(-1, n)[: args.images]
    else:
        t0 = time.perf_counter()
        res = shapley(model, images, targets, grid=g, budget=args.truth_orderings, seed=987654, progress=True)
        t_val, t_se = res.values.flatten(1).numpy(), res.stderr.flatten(1).numpy()
        print(f"truth: {args.truth_orderings} orderings, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        if args.truth_out:
            np.savez(args.truth_out, values=t_val.reshape(-1, g, g), stderr=t_se.reshape(-1, g, g), ids=np.array(ids),
                     orderings=args.truth_orderings)
    t_var = (t_se**2).sum(1)
    den = float(((t_val**2).sum(1) - t_var).sum())
    print(f"truth relative error (its own stderr): {math.sqrt(t_var.sum() / den):.3f}", file=sys.stderr)
    names = [m for m in args.methods.split(",") if m] + [p for p in args.peers.split(",") if p]
    with _utils.prepared_model(model, optimize=True, dtype=None, device=torch.device("cpu"), probe=images[:1]) as (fn, _, _):
        report = {"game": args.name, "grid": g, "images": ids, "targets": targets.tolist(),
                  "truth_rel_error": math.sqrt(t_var.sum() / den), "budgets": {}}
        for bmul in [int(b) for b in args.budgets.split(",")]:
            budget = bmul * n
            rows = {}
            for name in names:
                if (name == "SVARM" and n > args.svarm_max) or (name == "kADDSHAP" and n > args.kadd_max):
                    continue
                num, wall = 0.0, 0.0
                for i in range(args.images):
                    for r in range(args.reps):
                        seed = 1000 * r + i
                        t0 = time.perf_counter()
                        if name in ("default", *OURS):
                            phi = ours(model, images[i:i + 1], targets[i:i + 1], g, budget,
                                       None if name == "default" else name, seed)
                        else:
                            phi = peer(name, fn, images[i:i + 1], int(targets[i]), g, budget, seed)
                        wall += time.perf_counter() - t0
                        num += float(((phi - t_val[i]) ** 2).sum() - t_var[i])
                err = math.sqrt(max(num / args.reps, 0.0) / den)
                rows[name] = {"rel_l2_error": err, "seconds_per_map": wall / (args.images * args.reps)}
                print(f"  {args.name} {bmul}n {name:<22} error {err:.3f}  {rows[name]['seconds_per_map']:6.2f} s/map",
                      file=sys.stderr, flush=True)
            ref = rows["default"]["rel_l2_error"] if "default" in rows else None
            for r in rows.values():
                r["forward_factor_vs_default"] = (r["rel_l2_error"] / ref) ** 2 if ref else None
            report["budgets"][f"{bmul}n"] = rows
            print(f"{args.name} {bmul}n: " + ", ".join(
                f"{k} {v['rel_l2_error']:.3f} ({v['forward_factor_vs_default'] or math.nan:.2f}x, "
                f"{v['seconds_per_map']:.1f}s)" for k, v in rows.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
