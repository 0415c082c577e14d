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

Usage: .venv/bin/python benchmarks/shapley_bench.py [--quick] [--json FILE]
(``--quick``: 64 px, 8x8 grid, tiny budgets: a smoke test of the script, not a measurement.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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


def build_model(seed: int = 0) -> torch.nn.Module:
    from fstmatch.models import create_model

    torch.manual_seed(seed)
    return create_model("resnet18", num_classes=2, width=64).eval()


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
    rss_before = _rss_kb()
    from fstmatch.explain import shapley

    t0 = time.perf_counter()
    res = shapley(model, images, 0, grid=args.grid, n_permutations=args.perms, batch_size=args.batch,
                  optimize=not args.eager, dtype=torch.bfloat16 if args.bf16 else None)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"forwards": res.total_forward, "wall_s": wall, "fwd_per_s": res.total_forward / wall,
                      "rss_before_mb": rss_before / 1024, "peak_rss_mb": peak / 1024,
                      "peak_minus_before_mb": (peak - rss_before) / 1024}))


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
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
    ap.add_argument("--images", type=int, default=2)
    # probe mode (internal)
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=224, help=argparse.SUPPRESS)
    ap.add_argument("--grid", type=int, default=16, help=argparse.SUPPRESS)
    ap.add_argument("--perms", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--eager", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe(args)
    if os.environ.get("FSTMATCH_BENCH_NO_REEXEC") != "1" and any(os.environ.get(k) != v for k, v in ALLOCATOR_ENV.items()):
        # like the fstmatch CLI: run with the allocator settings (their effect is measured below)
        env = {**os.environ, **ALLOCATOR_ENV, "FSTMATCH_BENCH_NO_REEXEC": "1"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    torch.set_num_threads(args.threads)
    q = args.quick
    size, grid = (64, 8) if q else (224, 16)
    args.size = size
    p = grid * grid
    m_lo, m_hi = (2, 4)
    p_anti, p_plain, p_default = (4, 4, 8) if q else (8, 4, 64)
    t_start = time.perf_counter()

    model = build_model()
    images = make_images(args.images, size, seed=1)
    with torch.inference_mode():
        logits = model(images)
    targets = logits.argmax(1)
    print(f"ResNet-18 w64 random init, {args.images} images {size}px, grid {grid}; logits {logits.tolist()}",
          file=sys.stderr)
    R: dict[str, dict] = {}
    common = dict(grid=grid, batch_size=256)
    print("fp32 estimators (engine implementation):", file=sys.stderr)
    R["ref_lo"] = run(f"reference m={m_lo}", model, images, targets, method="reference", n_permutations=m_lo,
                      seed=10, **common)
    R["ref_hi"] = run(f"reference m={m_hi}", model, images, targets, method="reference", n_permutations=m_hi,
                      seed=11, **common)
    R["plain"] = run(f"walk P={p_plain}", model, images, targets, n_permutations=p_plain, antithetic=False,
                     seed=12, **common)
    R["anti"] = run(f"antithetic walk P={p_anti}", model, images, targets, n_permutations=p_anti, seed=13, **common)
    print("bf16:", file=sys.stderr)
    R["anti_bf16"] = run(f"antithetic walk P={p_anti} bf16", model, images, targets, n_permutations=p_anti,
                         seed=13, dtype=torch.bfloat16, **common)
    R["anti_bf16_default"] = run(f"antithetic walk P={p_default} bf16", model, images[:1], targets[:1],
                                 n_permutations=p_default, seed=14, dtype=torch.bfloat16, **common)
    print("reference-style implementation (fp32 eager, default layout):", file=sys.stderr)
    R["eager_16"] = run("reference m=1 eager batch 16", model, images[:1], targets[:1], method="reference",
                        n_permutations=1, optimize=False, grid=grid, batch_size=16)
    R["eager_200"] = run("reference m=1 eager batch 200", model, images[:1], targets[:1], method="reference",
                         n_permutations=1, optimize=False, grid=grid, batch_size=200)

    print("subprocess probes (allocator settings, peak memory):", file=sys.stderr)
    perms_probe = "2"
    probes = {}
    for alloc in (False, True):
        probes[f"engine_fp32_alloc{int(alloc)}"] = spawn_probe(["--grid", str(grid), "--perms", perms_probe], alloc, args)
        probes[f"engine_bf16_alloc{int(alloc)}"] = spawn_probe(
            ["--grid", str(grid), "--perms", perms_probe, "--bf16"], alloc, args)
        probes[f"eager_fp32_alloc{int(alloc)}"] = spawn_probe(
            ["--grid", str(grid), "--perms", perms_probe, "--eager", "--batch", "64"], alloc, args)
    mem = {}
    for batch in (16, 64, 256):
        mem[f"batch{batch}_grid{grid}_P2"] = spawn_probe(["--grid", str(grid), "--perms", "2", "--batch", str(batch)],
                                                         True, args)
    mem[f"batch64_grid{grid // 2}_P2"] = spawn_probe(["--grid", str(grid // 2), "--perms", "2", "--batch", "64"],
                                                     True, args)
    mem[f"batch64_grid{grid}_P6"] = spawn_probe(["--grid", str(grid), "--perms", "6", "--batch", "64"], True, args)

    report = analyse(R, probes, mem, p, p_default, args)
    report["total_wall_s"] = time.perf_counter() - t_start
    report["machine"] = {"cpu_threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
                         "processor": platform.processor() or platform.machine()}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


def analyse(R: dict, probes: dict, mem: dict, p: int, p_default: int, args) -> dict:
    fp32_keys = ["ref_lo", "ref_hi", "plain", "anti"]
    # ||phi||^2 per image: inverse-variance pool of the fp32 runs, minus its own variance
    w = [1 / sum_var(R[k]) for k in fp32_keys]
    pooled = sum(wi.view(-1, 1, 1) * R[k]["values"] for wi, k in zip(w, fp32_keys)) / sum(w).view(-1, 1, 1)
    pooled_var = 1 / sum(w)
    norm2 = (pooled.flatten(1).norm(dim=1) ** 2 - pooled_var).clamp_min(1e-30)
    out: dict = {"norm_phi": norm2.sqrt().tolist(), "runs": {}}
    per_image_fwd = {}
    for k, r in R.items():
        n_img = r["values"].shape[0]
        fwd_img = r["forwards"] / n_img
        sv = sum_var(r)
        rel = (sv / norm2[:n_img]).sqrt()
        per_image_fwd[k] = fwd_img
        out["runs"][k] = {"label": r["label"], "forwards_per_image": fwd_img, "wall_s": r["wall_s"],
                          "fwd_per_s": r["fwd_per_s"], "rel_l2_error": rel.tolist(),
                          "var_x_forwards": (sv * fwd_img).tolist()}
    # constant of each estimator: sum(stderr^2) * forwards, per image (equal-error forwards ratio)
    c = {k: sum_var(R[k]) * per_image_fwd[k] for k in fp32_keys}
    ref_c = (c["ref_lo"] + c["ref_hi"]) / 2
    out["ref_constant_ratio_hi_over_lo"] = (c["ref_hi"] / c["ref_lo"]).tolist()
    out["algorithmic_factor_walk"] = (ref_c / c["plain"]).tolist()
    out["algorithmic_factor_antithetic"] = (ref_c / c["anti"]).tolist()
    c_bf16 = sum_var(R["anti_bf16"]) * per_image_fwd["anti_bf16"]
    out["algorithmic_factor_antithetic_bf16"] = (ref_c / c_bf16).tolist()
    # stderr calibration: observed vs predicted squared distance between independent runs
    calib = []
    for i, a in enumerate(fp32_keys):
        for b in fp32_keys[i + 1:]:
            d2 = (R[a]["values"] - R[b]["values"]).flatten(1).norm(dim=1) ** 2
            calib.append({"pair": f"{a}-{b}", "observed_over_predicted": (d2 / (sum_var(R[a]) + sum_var(R[b]))).tolist()})
    out["stderr_calibration"] = calib
    # bf16 vs fp32 at equal orderings
    diff = (R["anti_bf16"]["values"] - R["anti"]["values"]).flatten(1).norm(dim=1)
    out["bf16_vs_fp32_equal_orderings"] = {
        "cosine": cosine(R["anti_bf16"]["values"], R["anti"]["values"]).tolist(),
        "rel_l2_diff": (diff / norm2.sqrt()).tolist(),
        "fp32_rel_l2_error": out["runs"]["anti"]["rel_l2_error"],
    }
    # rates and the wall-clock speedup at equal error
    eager = max(R["eager_16"]["fwd_per_s"], R["eager_200"]["fwd_per_s"])
    rate32 = sum(R[k]["forwards"] for k in fp32_keys) / sum(R[k]["wall_s"] for k in fp32_keys)
    rate16 = (R["anti_bf16"]["forwards"] + R["anti_bf16_default"]["forwards"]) / (
        R["anti_bf16"]["wall_s"] + R["anti_bf16_default"]["wall_s"])
    alg32 = torch.tensor(out["algorithmic_factor_antithetic"])
    alg16 = torch.tensor(out["algorithmic_factor_antithetic_bf16"])
    out["rates_fwd_per_s"] = {"reference_style_eager_fp32": eager, "eager_batch16": R["eager_16"]["fwd_per_s"],
                              "eager_batch200": R["eager_200"]["fwd_per_s"], "engine_fp32": rate32,
                              "engine_bf16": rate16}
    out["speedup_equal_error"] = {
        "fp32": {"algorithmic": alg32.tolist(), "implementation": rate32 / eager,
                 "wall": (alg32 * rate32 / eager).tolist()},
        "bf16": {"algorithmic": alg16.tolist(), "implementation": rate16 / eager,
                 "wall": (alg16 * rate16 / eager).tolist()},
    }
    # the default budget: its error, and the reference m (and time) giving the same error
    f_def = 2 + p_default * (p - 1)
    err_def = (c["anti"] / f_def / norm2).sqrt()
    m_eq = ref_c / (c["anti"] / f_def) / (2 * p)
    out["default_budget"] = {
        "permutations": p_default, "forwards_per_image": f_def, "rel_l2_error_fp32": err_def.tolist(),
        "reference_m_for_equal_error": m_eq.tolist(),
        "reference_eager_seconds_for_equal_error": (m_eq * 2 * p / eager).tolist(),
        "engine_fp32_seconds": f_def / rate32, "engine_bf16_seconds_measured": R["anti_bf16_default"]["wall_s"],
        "paper_m100_rel_l2_error": (ref_c / (2 * p * 100) / norm2).sqrt().tolist(),
    }
    out["probes_allocator"] = probes
    out["probes_memory"] = mem
    return out


if __name__ == "__main__":
    main()
