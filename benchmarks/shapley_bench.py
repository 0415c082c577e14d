"""Shapley engine benchmark: the paper's per-cell estimator vs the antithetic permutation walk.

ResNet-18 (width 64, random init, seed 0), 224 px, 16x16 grid, a few synthetic images, all in one
run, side by side. What it measures (docs/explain.md explains the method; results go to
benchmarks/results/shapley.md):

1. Error per forward. Every estimator here is unbiased, so its expected squared error against the
   true map is the sum of its per-cell variances, ``sum(stderr**2)``, which each run estimates from
   its own independent samples. The error reported is the relative L2 error
   ``sqrt(sum(stderr**2)) / ||phi||`` (||phi||^2 estimated from the pooled runs, bias-corrected).
   ``sum(stderr**2) * forwards`` is constant in the budget (error ~ 1/sqrt(budget)): checked by
   running the reference estimator at two m values; the forwards needed for equal error are then in
   the ratio of these constants (the "algorithmic" factor). The stderr estimates are validated
   against the observed distance between independent runs of the same image.
2. Forwards per second: the reference estimator run as the paper does (fp32, eager, default memory
   layout: ``optimize=False``) vs this engine (BatchNorm folded, channels_last, batch 256; fp32 and
   bf16) — the "implementation" factor.
3. bf16: cosine of bf16 maps to fp32 maps at equal orderings (same seed), and bf16's own variance.
4. Subprocesses: forwards/s with and without the glibc allocator settings the CLI sets, and peak
   RSS against batch size, grid and number of orderings.

Trained model (``--checkpoint RUN_DIR_OR_FILE --data MANIFEST``): the same stages on a saved model
(``fstmatch.models.load_model``, e.g. a ``det`` run) and N aligned test-split faces of the manifest
(fakes and reals alternating, from different videos), target = the det label (1 = fake).
``--skip-extras`` leaves out the bf16 comparison and the subprocess probes (allocator, memory),
which always use the random-init model and do not depend on the weights.

Usage: .venv/bin/python benchmarks/shapley_bench.py [--quick] [--json FILE]
       [--checkpoint RUN_DIR --data MANIFEST [--images N] [--skip-extras]]
(``--quick``: 64 px, 8x8 grid, tiny budgets: a smoke test of the script, not a measurement.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


def make_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth synthetic images in [0, 1]: a colour gradient plus random Gaussian blobs, (n, 3, size, size)."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = []
    for _ in range(n):
        img = torch.rand(3, 1, 1, generator=gen) * 0.5 + 0.2 * (xx + yy)
        for _ in range(12):
            cx, cy, r = torch.rand(3, generator=gen)
            blob = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.02 + 0.05 * r))
            img = img + (torch.rand(3, 1, 1, generator=gen) - 0.5) * blob
        out.append(img.clamp(0, 1))
    return torch.stack(out)


def build_model(seed: int = 0, checkpoint: Path | None = None) -> torch.nn.Module:
    """ResNet-18 w64 random init (seed), or the model saved at ``checkpoint`` (run dir or file)."""
    from fstmatch.models import create_model, load_model

    if checkpoint is not None:
        return load_model(checkpoint).eval()
    torch.manual_seed(seed)
    return create_model("resnet18", num_classes=2, width=64).eval()


def load_faces(manifest: Path, n: int, size: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``n`` aligned test-split faces, fakes and reals alternating (fake first), each from a different
    video, first frames in manifest order, skipping the first ``offset`` of that sequence: images
    (n, 3, size, size) in [0, 1], labels (n,), row ids."""
    from fstmatch.data import filter_rows, load_face, read_manifest

    root = manifest.parent if manifest.is_file() else manifest
    rows = filter_rows(read_manifest(manifest), split="test")
    pools: dict[int, list] = {1: [], 0: []}
    seen: set[tuple] = set()
    for row in rows:
        key = (row["method"], row["video"])
        if key not in seen:
            seen.add(key)
            pools[int(row["label"])].append(row)
    picked = [pools[1 - i % 2][i // 2] for i in range(offset, offset + n)]
    faces = [torch.from_numpy(load_face(r, root, canvas=size)[0]).permute(2, 0, 1) for r in picked]
    images = torch.stack(faces).float() / 255
    return images, torch.tensor([int(r["label"]) for r in picked]), [r["id"] for r in picked]


def bench_inputs(args: argparse.Namespace, size: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The images, targets and a description: synthetic (random-init mode) or test faces."""
    if args.checkpoint is None:
        return make_images(args.images, size, seed=1), None, "synthetic"
    images, labels, ids = load_faces(args.data, args.images, size, args.image_offset)
    return images, labels, f"test faces {ids} (labels {labels.tolist()})"


def run(label: str, model, images, targets, **kw) -> dict:
    from fstmatch.explain import shapley

    t0 = time.perf_counter()
    res = shapley(model, images, targets, **kw)
    wall = time.perf_counter() - t0
    fwd = res.total_forward
    print(f"  {label:<34} {fwd:>7} forwards {wall:7.1f} s  {fwd / wall:6.1f} fwd/s", file=sys.stderr, flush=True)
    return {"label": label, "wall_s": wall, "forwards": fwd, "fwd_per_s": fwd / wall,
            "values": res.values, "stderr": res.stderr, "n_forward": res.n_forward.tolist(), "kw": {
                k: str(v) for k, v in kw.items()}}


def sum_var(r: dict) -> torch.Tensor:
    """Per image: sum over cells of stderr^2 = estimated E||phi_hat - phi||^2, (N,)."""
    return (r["stderr"] ** 2).flatten(1).sum(1)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1), b.flatten(1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


# ----------------------------------------------------------------------------------------------------
# Subprocess probes


def probe(args: argparse.Namespace) -> None:
    """One measurement in a fresh process; prints a JSON line."""
    torch.set_num_threads(args.threads)
    model = build_model()
    images = make_images(1, args.size, seed=1)
    with torch.inference_mode():
        model(images)  # warm-up, batch 1
    rss_before = _status_kb("VmRSS")
    from fstmatch.explain import shapley

    t0 = time.perf_counter()
    res = shapley(model, images, 0, grid=args.grid, n_permutations=args.perms, batch_size=args.batch,
                  optimize=not args.eager, dtype=torch.bfloat16 if args.bf16 else None)
    wall = time.perf_counter() - t0
    peak = _status_kb("VmHWM")  # ru_maxrss would include the parent's RSS (kept across exec)
    print(json.dumps({"forwards": res.total_forward, "wall_s": wall, "fwd_per_s": res.total_forward / wall,
                      "rss_before_mb": rss_before / 1024, "peak_rss_mb": peak / 1024,
                      "peak_minus_before_mb": (peak - rss_before) / 1024}))


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def spawn_probe(extra: list[str], allocator: bool, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV}
    if allocator:
        env.update(ALLOCATOR_ENV)
    env["FSTMATCH_BENCH_NO_REEXEC"] = "1"
    cmd = [sys.executable, __file__, "--probe", "--size", str(args.size), "--threads", str(args.threads), *extra]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  probe {' '.join(extra)} allocator={allocator}: {result}", file=sys.stderr, flush=True)
    return result


# ----------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: 64 px, 8x8 grid, tiny budgets")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--checkpoint", type=Path, help="saved model (run dir or .safetensors) instead of random init")
    ap.add_argument("--data", type=Path, help="manifest.jsonl (or its folder) for --checkpoint: test-split faces")
    ap.add_argument("--image-offset", type=int, default=0, help="with --data: skip this many faces of the sequence")
    ap.add_argument("--skip-extras", action="store_true", help="no bf16 comparison, no subprocess probes")
    ap.add_argument("--stage", choices=["all", "estimators", "rates"], default="all",
                    help="estimators: error per forward, bf16, memory; rates: interleaved forwards/s")
    ap.add_argument("--rounds", type=int, default=4, help="rounds of the interleaved rate measurement")
    # probe mode (internal)
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=224, help=argparse.SUPPRESS)
    ap.add_argument("--grid", type=int, default=16, help=argparse.SUPPRESS)
    ap.add_argument("--perms", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--eager", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if (args.checkpoint is None) != (args.data is None):
        ap.error("--checkpoint and --data go together")
    if args.probe:
        return probe(args)
    if os.environ.get("FSTMATCH_BENCH_NO_REEXEC") != "1" and any(os.environ.get(k) != v for k, v in ALLOCATOR_ENV.items()):
        # like the fstmatch CLI: run with the allocator settings (their effect is measured below)
        env = {**os.environ, **ALLOCATOR_ENV, "FSTMATCH_BENCH_NO_REEXEC": "1"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    torch.set_num_threads(args.threads)
    if args.stage == "rates":
        report = {"interleaved_rates": interleaved_rates(args)}
        print(json.dumps(report, indent=1))
        if args.json:
            args.json.write_text(json.dumps(report, indent=1) + "\n")
        return None
    q = args.quick
    size, grid = (64, 8) if q else (224, 16)
    args.size = size
    p = grid * grid
    # Budgets are small on purpose (a shared 2-core box): sum(stderr^2) sums G*G cells, so even 2
    # samples per cell estimate it well; errors at other budgets follow from error ~ 1/sqrt(budget).
    m_lo, m_hi = 2, 4  # m_hi on 1/8 of the cells only
    p_plain, p_anti, p_default = 2, 4, 64
    t_start = time.perf_counter()

    model = build_model(checkpoint=args.checkpoint)
    images, targets, what = bench_inputs(args, size)
    with torch.inference_mode():
        logits = model(images)
    if targets is None:
        targets = logits.argmax(1)
    name = f"checkpoint {args.checkpoint}" if args.checkpoint else "ResNet-18 w64 random init"
    print(f"{name}, {args.images} images {size}px ({what}), grid {grid}, targets {targets.tolist()}; "
          f"logits {logits.tolist()}", file=sys.stderr)
    R: dict[str, dict] = {}
    common = dict(grid=grid, batch_size=256)
    print("fp32 estimators (engine implementation, batch 256):", file=sys.stderr)
    R["ref_lo"] = run(f"reference m={m_lo}", model, images, targets, method="reference", n_permutations=m_lo,
                      seed=10, **common)
    R["anti"] = run(f"antithetic walk P={p_anti}", model, images, targets, n_permutations=p_anti, seed=13, **common)
    R["plain"] = run(f"walk P={p_plain}", model, images, targets, n_permutations=p_plain, antithetic=False,
                     seed=12, **common)
    cells = torch.randperm(p, generator=torch.Generator().manual_seed(5))[: p // 8]
    sub = reference_cells(model, images, targets, grid, m_hi, cells, seed=11)
    one = (images[:1], targets[:1])
    if not args.skip_extras:
        print("bf16 vs fp32 at equal orderings (4x4 grid: bf16 is slow on CPUs without AMX):", file=sys.stderr)
        R["g4_fp32"] = run("antithetic walk P=4 grid 4 fp32", model, *one, grid=grid // 4, n_permutations=4,
                           seed=15)
        R["g4_bf16"] = run("antithetic walk P=4 grid 4 bf16", model, *one, grid=grid // 4, n_permutations=4,
                           seed=15, dtype=torch.bfloat16)
    print("reference-style implementation (fp32 eager, default layout, batch 64):", file=sys.stderr)
    # rate only (forwards/s do not depend on the grid): 8x8 grid, m=1 -> 128 forwards
    R["eager_64"] = run("reference m=1 eager batch 64", model, *one, method="reference",
                        n_permutations=1, optimize=False, grid=grid // 2, batch_size=64)

    probes = {}
    if not args.skip_extras:
        print("subprocess probes (allocator settings, peak memory; engine fp32):", file=sys.stderr)
        g2, g4 = str(grid // 2), str(grid // 4)
        probes = {
            "b64_g8_P2_alloc0": spawn_probe(["--grid", g2, "--perms", "2", "--batch", "64"], False, args),
            "b64_g8_P2_alloc1": spawn_probe(["--grid", g2, "--perms", "2", "--batch", "64"], True, args),
            "b256_g8_P4_alloc1": spawn_probe(["--grid", g2, "--perms", "4", "--batch", "256"], True, args),
            "b64_g8_P4_alloc1": spawn_probe(["--grid", g2, "--perms", "4", "--batch", "64"], True, args),
            "b64_g4_P6_alloc1": spawn_probe(["--grid", g4, "--perms", "6", "--batch", "64"], True, args),
        }

    report = analyse(R, sub, probes, p, p_default, m_hi)
    report["inputs"] = {"model": str(args.checkpoint or "resnet18 w64 random init (seed 0)"), "images": what,
                        "targets": targets.tolist(), "logits": logits.tolist()}
    if args.stage == "all":
        report["interleaved_rates"] = interleaved_rates(args)
    report["bf16_capability"] = {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                 "amx_bf16_flag": "amx_bf16" in Path("/proc/cpuinfo").read_text()}
    report["total_wall_s"] = time.perf_counter() - t_start
    report["machine"] = {"cpu_threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
                         "processor": platform.processor() or platform.machine()}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


def interleaved_rates(args: argparse.Namespace) -> dict:
    """Forwards/s, alternating configurations round by round so that load changes on a shared
    machine hit all of them alike; medians and the median of per-round ratios.

    In process (allocator settings as this process has them): the reference estimator as the paper
    runs it (fp32 eager, default layout, batch 64) vs the engine (BN folded, channels_last, batch
    128), on the benchmark's model and first image. Subprocesses (not with ``--skip-extras``): the
    random-init engine with and without the glibc allocator settings."""
    import statistics

    size = 64 if args.quick else 224
    grid = 8 if not args.quick else 4
    model = build_model(checkpoint=args.checkpoint)
    image, labels, _ = bench_inputs(argparse.Namespace(**{**vars(args), "images": 1}), size)
    target = 0 if labels is None else int(labels[0])
    from fstmatch.explain import shapley

    def rate(**kw) -> float:
        t0 = time.perf_counter()
        res = shapley(model, image, target, grid=grid, **kw)
        return res.total_forward / (time.perf_counter() - t0)

    rows: dict[str, list[float]] = {"eager_ref_b64": [], "engine_b128": [], "probe_engine_alloc0": [],
                                    "probe_engine_alloc1": []}
    probe_args = ["--grid", str(grid), "--perms", "2", "--batch", "128"]
    for r in range(args.rounds):
        rows["eager_ref_b64"].append(rate(method="reference", n_permutations=1, optimize=False, batch_size=64))
        rows["engine_b128"].append(rate(n_permutations=2, batch_size=128))
        if r < 2 and not args.skip_extras:
            for alloc in (False, True) if r == 0 else (True, False):
                rows[f"probe_engine_alloc{int(alloc)}"].append(spawn_probe(probe_args, alloc, args)["fwd_per_s"])
        print(f"  round {r}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rows.items() if v), file=sys.stderr,
              flush=True)
    out = {k: {"fwd_per_s": v, "median": statistics.median(v)} for k, v in rows.items() if v}
    out["implementation_ratio_per_round"] = [e / b for e, b in zip(rows["engine_b128"], rows["eager_ref_b64"])]
    out["implementation_ratio_median"] = statistics.median(out["implementation_ratio_per_round"])
    out["allocator_ratio_per_round"] = [a / b for a, b in zip(rows["probe_engine_alloc1"], rows["probe_engine_alloc0"])]
    out["setup"] = {"size": size, "grid": grid, "forwards_per_call": 2 + 2 * (grid * grid - 1)}
    return out


def reference_cells(model, images, targets, grid: int, m: int, cells: torch.Tensor, seed: int) -> dict:
    """The paper's estimator (SPEC §3) for some cells only, through the engine's value function:
    per cell m orderings, two forwards each. Returns the per-sample variance of each cell's marginal
    (the estimator's variance at m is that / m) and the cost."""
    from fstmatch.explain._utils import ValueFunction, make_baseline, prepared_model

    p = grid * grid
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for c in cells.tolist():
        for _ in range(m):
            pos = torch.randperm(p, generator=gen).argsort()
            before = pos < pos[c]
            plus = before.clone()
            plus[c] = True
            rows += [before, plus]
    coalitions = torch.stack(rows)
    base = make_baseline("zero", images, (images.shape[-2] // grid, images.shape[-1] // grid))
    t0 = time.perf_counter()
    with prepared_model(model, optimize=True, dtype=None, device=images.device, probe=images[:1]) as (fn, dt):
        vf = ValueFunction(fn, images, base, targets, grid, batch_size=256, input_dtype=dt, channels_last=True)
        v = vf.evaluate(torch.arange(images.shape[0]), coalitions).view(images.shape[0], len(cells), m, 2)
    wall = time.perf_counter() - t0
    marg = v[..., 1] - v[..., 0]
    fwd = int(vf.n_forward.sum())
    print(f"  reference m={m} on {len(cells)} cells       {fwd:>7} forwards {wall:7.1f} s  {fwd / wall:6.1f} fwd/s",
          file=sys.stderr, flush=True)
    return {"cells": cells, "m": m, "sample_var": marg.var(dim=2), "forwards": fwd, "wall_s": wall}


def analyse(R: dict, sub: dict, probes: dict, p: int, p_default: int, m_hi: int) -> dict:
    fp32_keys = ["ref_lo", "anti", "plain"]
    n_img = R["ref_lo"]["values"].shape[0]
    m_lo = int(R["ref_lo"]["kw"]["n_permutations"])
    out: dict = {"runs": {}, "images": []}
    for k, r in R.items():
        fwd_img = r["forwards"] / r["values"].shape[0]
        out["runs"][k] = {"label": r["label"], "images": r["values"].shape[0], "forwards_per_image": fwd_img,
                          "wall_s": r["wall_s"], "fwd_per_s": r["fwd_per_s"]}
    out["runs"]["ref_hi_subset"] = {"label": f"reference m={m_hi} on {len(sub['cells'])} cells",
                                    "forwards": sub["forwards"], "wall_s": sub["wall_s"],
                                    "fwd_per_s": sub["forwards"] / sub["wall_s"]}
    f_def = 2 + p_default * (p - 1)
    for i in range(n_img):
        var = {k: float(sum_var(R[k])[i]) for k in fp32_keys}
        fwd = {k: out["runs"][k]["forwards_per_image"] for k in fp32_keys}
        # ||phi||^2: inverse-variance pool of the independent fp32 runs, minus the pool's variance
        w = {k: 1 / var[k] for k in fp32_keys}
        pooled = sum(w[k] * R[k]["values"][i] for k in fp32_keys) / sum(w.values())
        norm2 = max(float(pooled.norm() ** 2) - 1 / sum(w.values()), 1e-30)
        const = {k: var[k] * fwd[k] for k in fp32_keys}  # sum(stderr^2) * forwards: budget-independent
        # the reference at m_hi on a subset of cells, scaled to all cells
        cells = sub["cells"]
        sub_hi = float(sub["sample_var"][i].sum()) / m_hi
        sub_lo = float((R["ref_lo"]["stderr"][i].flatten()[cells] ** 2).sum())
        img = {"image": i, "norm_phi": norm2**0.5,
               "rel_l2_error": {k: (var[k] / norm2) ** 0.5 for k in fp32_keys},
               f"rel_l2_error_ref_m{m_hi}_from_{len(cells)}_cells": (sub_hi * p / len(cells) / norm2) ** 0.5,
               f"ref_variance_ratio_m{m_lo}_over_m{m_hi}_same_cells": sub_lo / sub_hi,
               "var_x_forwards_over_norm2": {k: const[k] / norm2 for k in fp32_keys},
               "algorithmic_factor_antithetic": const["ref_lo"] / const["anti"],
               "algorithmic_factor_plain_walk": const["ref_lo"] / const["plain"]}
        calib = {}
        for j, a in enumerate(fp32_keys):
            for b in fp32_keys[j + 1:]:
                d2 = float((R[a]["values"][i] - R[b]["values"][i]).norm() ** 2)
                calib[f"{a}-{b}"] = d2 / (var[a] + var[b])
        img["stderr_calibration_observed_over_predicted"] = calib
        img["default_rel_l2_error"] = (const["anti"] / f_def / norm2) ** 0.5
        img["paper_m100_rel_l2_error"] = (const["ref_lo"] / (2 * p * 100) / norm2) ** 0.5
        img["reference_m_for_default_error"] = const["ref_lo"] / (const["anti"] / f_def) / (2 * p)
        out["images"].append(img)
    if "g4_bf16" in R:
        a, b = R["g4_fp32"], R["g4_bf16"]
        n2 = max(float(a["values"][0].norm() ** 2 - sum_var(a)[0]), 1e-30)
        out["bf16_vs_fp32_equal_orderings_grid4"] = {
            "cosine": float(cosine(a["values"], b["values"])[0]),
            "rel_l2_diff": float((a["values"][0] - b["values"][0]).norm()) / n2**0.5,
            "fp32_rel_l2_error": float(sum_var(a)[0] / n2) ** 0.5,
            "bf16_rel_l2_error": float(sum_var(b)[0] / n2) ** 0.5,
            "fp32_fwd_per_s": a["fwd_per_s"], "bf16_fwd_per_s": b["fwd_per_s"],
        }
    eager = R["eager_64"]["fwd_per_s"]
    rate32 = (sum(R[k]["forwards"] for k in fp32_keys) + sub["forwards"]) / (
        sum(R[k]["wall_s"] for k in fp32_keys) + sub["wall_s"])
    alg = [img["algorithmic_factor_antithetic"] for img in out["images"]]
    out["rates_fwd_per_s"] = {"reference_style_eager_fp32_batch64": eager, "engine_fp32_batch256": rate32}
    out["speedup_equal_error_fp32"] = {"algorithmic": alg, "implementation": rate32 / eager,
                                       "wall": [f * rate32 / eager for f in alg]}
    out["default_budget"] = {"permutations": p_default, "forwards_per_image": f_def,
                             "engine_fp32_seconds_per_image": f_def / rate32,
                             "reference_m100_eager_seconds_per_image": 2 * p * 100 / eager}
    out["probes"] = probes
    return out


if __name__ == "__main__":
    main()
