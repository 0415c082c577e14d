"""Does compression move a model's evidence off its ground-truth region? (H3's mechanism; issue 18.)

For every seed of a demo or study folder, reads the verify map files (``verify/maps/<role>__raw``,
``__c23``, ``__c40``: the same frames at three compressions, aligned with the raw frame's landmarks)
and scores each map against the **raw** frame's FST-Synth ground truth (the region each role should
use: detectors the trace pixels, the target encoder the donor's, the source encoder the rest):

- ``lift`` = positive map mass on the region / the region's area (1 = chance), per compression;
- ``top share`` = fraction of the map's top-k cells (k = the region's cell count) inside the region.

A detector whose maps move under compression because compression removes its traces shows a lift
that falls from raw to c40; an encoder whose evidence survives keeps it. Prints one table per role
(mean over seeds, 95 % t interval across seeds) and writes ``--out`` JSON. Reads files only: no
model is loaded. Not a speed benchmark; it lives here beside ``explainers_vs_truth.py``.

    python benchmarks/truth_under_compression.py STUDY_OR_DEMO_DIR [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

COMPS = ("raw", "c23", "c40")
ROLES = ("det", "source", "target", "det_paired", "det_unpaired", "fstmatching")


def seed_scores(maps_dir: Path, role: str) -> dict[str, dict[str, float]] | None:
    """``{comp: {"lift", "top_share", "n"}}`` of ``role``'s maps in ``maps_dir``; None when its raw
    maps (with masks) are missing."""
    from fstmatch.explain.mapfile import read_maps
    from fstmatch.hypotheses.per_image import frame_key
    from fstmatch.hypotheses.truth import ROLE_REGION, region_fractions, truth_score

    raw_path = maps_dir / f"{role}__raw.npz"
    if not raw_path.is_file():
        return None
    raw = read_maps(raw_path)
    if raw.masks is None or raw.info is None:
        return None
    grid = raw.values.shape[-1]
    fractions = region_fractions(raw.masks.astype(np.float64) / 255.0, grid)[ROLE_REGION[role]]
    index = {frame_key(i): k for k, i in enumerate(raw.info)}
    out: dict[str, dict[str, float]] = {}
    for comp in COMPS:
        path = maps_dir / f"{role}__{comp}.npz"
        if not path.is_file():
            continue
        m = read_maps(path)
        rows = [index.get(frame_key(i)) for i in (m.info or [])]
        keep = [j for j, k in enumerate(rows) if k is not None]
        if not keep:
            continue
        f = fractions[[rows[j] for j in keep]]
        v = m.values[keep]
        score = truth_score(v, f)
        top = []
        for phi, frac in zip(v.reshape(len(v), -1), f.reshape(len(f), -1)):
            k = int(round(frac.sum()))
            if k < 1:
                continue
            cells = np.argsort(-phi)[:k]
            top.append(frac[cells].sum() / frac.sum())
        out[comp] = {"lift": score["lift"], "top_share": float(np.mean(top)) if top else float("nan"),
                     "n": score["n"]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="a demo folder (with verify/) or a study folder (with seed-*/)")
    ap.add_argument("--out", type=Path, help="write the per-seed and aggregate numbers here (JSON)")
    args = ap.parse_args(argv)
    from fstmatch.hypotheses.stats import between_seeds
    from fstmatch.hypotheses.truth import ROLE_REGION

    seeds = sorted(args.folder.glob("seed-*/verify/maps")) or [args.folder / "verify" / "maps"]
    seeds = [s for s in seeds if s.is_dir()]
    if not seeds:
        sys.exit(f"no verify/maps under {args.folder} (or its seed-*/ folders): run fstmatch demo first")
    per_seed = {str(s.parent.parent.name): {r: seed_scores(s, r) for r in ROLES} for s in seeds}
    summary: dict[str, dict[str, dict[str, list[float]]]] = {}
    print(f"{len(seeds)} seed(s) in {args.folder}; mean [95 % t interval across seeds]")
    for role in ROLES:
        got = [v[role] for v in per_seed.values() if v[role]]
        if not got:
            continue
        print(f"\n{role + ' on ' + ROLE_REGION[role]:24s}" + "   ".join(f"{c:>24s}" for c in COMPS))
        summary[role] = {}
        for key in ("lift", "top_share"):
            cells, summary[role][key] = [], {}
            for comp in COMPS:
                vals = [g[comp][key] for g in got if comp in g]
                if not vals:
                    cells.append(f"{'-':>24s}")
                    continue
                agg = between_seeds(vals)
                mean, lo, hi = agg["mean"], agg["low"], agg["high"]
                summary[role][key][comp] = [mean, lo, hi]
                cells.append(f"{mean:7.3f} [{lo:6.3f}, {hi:6.3f}]")
            print(f"  {key:22s}" + "   ".join(cells))
    if args.out:
        args.out.write_text(json.dumps({"per_seed": per_seed, "aggregate": summary}, indent=1))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
