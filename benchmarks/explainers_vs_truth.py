"""Every explainer of ``fstmatch.explain.attribution`` scored against FST-Synth's ground truth.

Takes a demo (or verify) run folder: its ``verify/summary.json`` names the manifest, the analysed
frames (fakes, raw ids; their c23/c40 versions are aligned with the raw landmarks, as H3 does), the
alignment and the checkpoints. For each explainer and compression, on the detector ``det`` (the
class explained: 1, fake), per image, at pixel resolution against the trace mask:

- lift: mean share of positive attribution on trace pixels / mean trace area (1 = chance);
- pointing game: the maximal pixel on a trace pixel (ties: the hit rate of a random tie-break);
- AUROC of the pixel values for trace against non-trace pixels;
- seconds per map (one image per call, one thread unless ``--threads``);

each with a 95 % percentile bootstrap interval over images (2000 resamples; the lift's ratio is
resampled as a ratio). Definitions: ``fstmatch.explain.localisation`` (Quantus's, cited there).

Then the model-randomisation sanity check (Adebayo et al. 2018): the detector's top-level layers
are re-initialised (their own ``reset_parameters``; BatchNorm: γ = 1, β = 0, statistics reset)
cascading from the top (``fc``) down, and at each step the Spearman correlation of ``|map|`` with
the trained detector's ``|map|`` (raw images) is reported; an explainer whose mean correlation is
still above 0.5 with every layer randomised is flagged. Last, the same scores on the identity
encoders against their regions: the target encoder (its class: the target identity) on donor
pixels, the source encoder (the source identity) on the rest (neither donor nor trace).

Usage: .venv/bin/python benchmarks/explainers_vs_truth.py --run demo-out [--quick] --out OUT
       [--explainers shapley gradcam ...] [--threads 1]
Writes ``OUT/explainers_vs_truth.json`` and ``OUT/explainers_vs_truth.md``.
``--quick``: 2 frames per method, 4 for the sanity check, Shapley at 8 orderings' worth, IG with
16 steps, encoders on raw only; the full run: every analysed frame (8 per method on the tiny demo),
10 for the sanity check, Shapley at the run's own budget, IG 32 steps, encoders on all compressions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fstmatch.data import Geometry, load_face, read_manifest
from fstmatch.errors import UserError
from fstmatch.explain.attribution import attribute, list_explainers
from fstmatch.explain.localisation import (
    area_share,
    auroc,
    bootstrap_ci,
    lift,
    mass_share,
    pointing_game,
    rank_correlation,
)
from fstmatch.models import load_model

COMPRESSIONS = ("raw", "c23", "c40")
FLAG_RHO = 0.5


def find_summary(run: Path) -> Path:
    for p in (run / "verify" / "summary.json", run / "summary.json"):
        if p.is_file():
            return p
    raise UserError(f"{run} holds no verify/summary.json nor summary.json: pass a demo or verify output folder")


def _resolve(path: str, run: Path) -> Path:
    p = Path(path)
    if p.exists():
        return p
    for base in (run, *run.parents):
        if (base / p).exists():
            return base / p
    raise UserError(f"{path} (recorded in the run's summary.json) was not found from {run}")


def select_ids(ids: list[str], per_method: int | None) -> list[str]:
    """The first ``per_method`` analysed frames of each method (all with None)."""
    if per_method is None:
        return ids
    count: dict[str, int] = defaultdict(int)
    out = []
    for i in ids:
        method = i.split("/")[0]
        if count[method] < per_method:
            out.append(i)
            count[method] += 1
    return out


def load_faces(rows_by_id: dict[str, dict], root: Path, ids: list[str], comp: str, images: dict) -> tuple[torch.Tensor, np.ndarray, list[dict]]:
    """Faces (N, 3, H, W) in [0, 1] and masks (N, 2, H, W) (donor, trace) of the ``comp`` versions
    of the raw frames ``ids``, aligned with the raw frames' landmarks."""
    xs, ms, rows = [], [], []
    for raw_id in ids:
        method, _, video, frame = raw_id.split("/")
        row = rows_by_id[f"{method}/{comp}/{video}/{frame}"]
        ref = rows_by_id[raw_id] if comp != "raw" else None
        img, m = load_face(row, root, geometry=Geometry.from_dict(images), landmarks_from=ref, with_masks=True)
        if m is None:
            raise UserError(f"{row['id']} has no ground-truth mask: this benchmark needs FST-Synth data")
        xs.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255)
        ms.append(m)
        rows.append(row)
    return torch.stack(xs), np.stack(ms).astype(np.float64), rows


def region(masks: np.ndarray, name: str) -> np.ndarray:
    donor, trace = np.clip(masks[:, 0], 0, 1), np.clip(masks[:, 1], 0, 1)
    return {"trace": trace, "donor": donor, "rest": 1.0 - np.maximum(donor, trace)}[name]


def explain_each(name: str, model: nn.Module, x: torch.Tensor, targets: list[int], grid: int,
                 opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Maps (N, H, W) and seconds (N,), one image per call, after one untimed warm-up call (the
    first call pays for imports and allocations)."""
    attribute(name, model, x[:1], targets[0], grid=grid, **opts.get(name, {}))
    maps, secs = [], []
    for i in range(len(x)):
        res = attribute(name, model, x[i : i + 1], targets[i], grid=grid, **opts.get(name, {}))
        maps.append(res.pixels[0].numpy())
        secs.append(float(res.seconds[0]))
    return np.stack(maps), np.array(secs)


def score(maps: np.ndarray, mask: np.ndarray, secs: np.ndarray) -> dict[str, Any]:
    """Per-image scores against ``mask`` (N, H, W) and their bootstrap intervals."""
    share = np.array([mass_share(a, m) for a, m in zip(maps, mask)])
    area = np.array([area_share(m) for m in mask])
    point = np.array([pointing_game(a, m) for a, m in zip(maps, mask)])
    auc = np.array([auroc(a, m) for a, m in zip(maps, mask)])
    out: dict[str, Any] = {}
    for key, vals, stat in (("lift", [share, area], lift), ("pointing", point, np.mean), ("auroc", auc, np.mean),
                            ("seconds", secs, np.mean)):
        est, lo, hi = bootstrap_ci(vals, stat)
        used = np.logical_and.reduce([np.isfinite(v) for v in (vals if isinstance(vals, list) else [vals])])
        out[key] = {"value": est, "low": lo, "high": hi, "n": int(used.sum()), "skipped": int((~used).sum())}
    out["pointing_chance"] = float(np.nanmean([(m > 0.5).mean() for m in mask]))
    return out


def randomisation_steps(model: nn.Module) -> list[str]:
    """Top-level children with parameters, from the output back to the input (definition order
    reversed: the forward order of fstmatch's and torchvision's ResNets)."""
    return [n for n, c in reversed(list(model.named_children())) if any(True for _ in c.parameters())]


def reinitialise(module: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()


def sanity(det: nn.Module, checkpoint: Path, arch: str | None, x: torch.Tensor, grid: int, names: list[str],
           opts: dict[str, Any]) -> dict[str, Any]:
    trained = {n: explain_each(n, det, x, [1] * len(x), grid, opts)[0] for n in names}
    model = load_model(checkpoint, arch=arch).eval()
    out: dict[str, Any] = {"steps": [], "rho": {n: [] for n in names}}
    for k, layer in enumerate(randomisation_steps(model)):
        reinitialise(getattr(model, layer), seed=k)
        out["steps"].append(layer)
        for n in names:
            maps = explain_each(n, model, x, [1] * len(x), grid, opts)[0]
            rho = np.array([rank_correlation(a, b) for a, b in zip(trained[n], maps)])
            est, lo, hi = bootstrap_ci(rho)
            out["rho"][n].append({"value": est, "low": lo, "high": hi, "n": int(np.isfinite(rho).sum())})
    out["flagged"] = [n for n in names if out["rho"][n] and out["rho"][n][-1]["value"] > FLAG_RHO]
    return out


def _fmt(s: dict[str, Any], digits: int = 2) -> str:
    if not np.isfinite(s["value"]):
        return "n/a"
    return f"{s['value']:.{digits}f} [{s['low']:.{digits}f}, {s['high']:.{digits}f}]"


def to_markdown(res: dict[str, Any]) -> str:
    lines = [f"# Explainers against FST-Synth's ground truth ({'quick' if res['quick'] else 'full'})", "",
             f"Command: `{res['command']}`  ", f"Machine: {res['machine']}  ", f"Date: {res['date']}  ",
             f"Run: {res['run']}; {res['n_images']} fakes per compression; grid {res['grid']}; "
             f"{res['seconds_total']:.0f} s in all; load average {res['load_before']} before, {res['load_after']} after.",
             "", "95 % percentile bootstrap intervals over images (2000 resamples). Pointing-game chance = mean trace area.",
             ""]
    for role, block in res["scores"].items():
        lines += [f"## {role}: against {block['region']} pixels", "",
                  "| explainer | comp | lift | pointing (chance) | AUROC | s/map |", "|---|---|---|---|---|---|"]
        for comp, per in block["by_compression"].items():
            for n, s in per.items():
                lines.append(f"| {n} | {comp} | {_fmt(s['lift'])} | {_fmt(s['pointing'])} ({s['pointing_chance']:.2f}) "
                             f"| {_fmt(s['auroc'])} | {_fmt(s['seconds'], 3)} |")
        lines.append("")
    san = res["sanity"]
    lines += ["## Model randomisation (cascading, top layer first): Spearman ρ of |map| with the trained maps", "",
              "| explainer | " + " | ".join(f"+{s}" for s in san["steps"]) + " |",
              "|---|" + "---|" * len(san["steps"])]
    for n, rhos in san["rho"].items():
        flag = " **flagged**" if n in san["flagged"] else ""
        lines.append(f"| {n}{flag} | " + " | ".join(_fmt(r) for r in rhos) + " |")
    lines += ["", f"Flagged (ρ > {FLAG_RHO} with every layer randomised): {', '.join(san['flagged']) or 'none'}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="demo or verify output folder")
    ap.add_argument("--out", type=Path, required=True, help="folder for explainers_vs_truth.{json,md}")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--explainers", nargs="+", default=list_explainers(), choices=list_explainers())
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    start, load_before = time.perf_counter(), os.getloadavg()
    summary = json.loads(find_summary(args.run).read_text())
    manifest = _resolve(summary["images"]["manifest"], args.run)
    rows_by_id = {r["id"]: r for r in read_manifest(manifest)}
    images, grid = summary["config"]["images"], int(summary["shapley"]["grid"])
    ids = select_ids(summary["images"]["ids"], 2 if args.quick else None)
    perms = 8 if args.quick else int(summary["shapley"].get("budget") or 32)
    opts = {"shapley": {"budget": perms, "seed": 0}, "ig": {"steps": 16 if args.quick else 32}}
    if "det" not in summary["models"]:
        raise UserError("the run's summary.json names no det checkpoint: nothing to explain")
    models = {role: (_resolve(m["checkpoint"], args.run), m.get("arch"))
              for role, m in summary["models"].items() if role in ("det", "target", "source")}
    # the compressions whose versions of every analysed frame are in the manifest (H1-only runs: raw)
    comps_here = tuple(c for c in COMPRESSIONS
                       if all(f"{i.split('/')[0]}/{c}/{'/'.join(i.split('/')[2:])}" in rows_by_id for i in ids))
    faces = {c: load_faces(rows_by_id, manifest.parent, ids, c, images) for c in comps_here}

    scores: dict[str, Any] = {}
    plan = [("det", "trace", comps_here), ("target", "donor", ("raw",) if args.quick else comps_here),
            ("source", "rest", ("raw",) if args.quick else comps_here)]
    for role, reg, comps in plan:
        if role not in models:
            continue
        model = load_model(models[role][0], arch=models[role][1]).eval()
        block: dict[str, Any] = {"region": reg, "by_compression": {}}
        for comp in comps:
            x, masks, rows = faces[comp]
            targets = [1] * len(rows) if role == "det" else [int(r[role]) for r in rows]
            block["by_compression"][comp] = {}
            for n in args.explainers:
                maps, secs = explain_each(n, model, x, targets, grid, opts)
                block["by_compression"][comp][n] = score(maps, region(masks, reg), secs)
                print(f"{role} {comp} {n}: lift {_fmt(block['by_compression'][comp][n]['lift'])}", file=sys.stderr)
        scores[role] = block

    det = load_model(models["det"][0], arch=models["det"][1]).eval()
    n_sanity = 4 if args.quick else 10
    san = sanity(det, models["det"][0], models["det"][1], faces["raw"][0][:n_sanity], grid, args.explainers, opts)

    res = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"{args.threads} thread(s)",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "run": str(args.run), "quick": args.quick, "grid": grid, "n_images": len(ids), "ids": ids,
        "options": opts, "scores": scores, "sanity": san,
        "seconds_total": time.perf_counter() - start,
        "load_before": [round(v, 1) for v in load_before], "load_after": [round(v, 1) for v in os.getloadavg()],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "explainers_vs_truth.json").write_text(json.dumps(res, indent=1) + "\n")
    (args.out / "explainers_vs_truth.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
