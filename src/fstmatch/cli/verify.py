"""``fstmatch verify``: the paper's three hypotheses on trained models (docs/method.md §4, §8)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fstmatch.cli._common import add_config_arguments

HELP = "verify the paper's hypotheses 1-3 (Q, paired/unpaired Q curves, stability δ) on trained models"
DESCRIPTION = """\
Explain the source encoder, target encoder and detectors on the same fake frames with Shapley
values of grid cells, then compute:
  H1  Q per method: the detector's attribution outside minus inside the top source/target cells
  H2  Q(t) curves of the paired and unpaired detectors, per method
  H3  stability δ of each model's maps across raw/c23/c40 versions of the same frames
and, on FST-Synth, ground-truth scores (share of each map's positive mass on the cells it should
use). Writes DIR/summary.json, figures (PNG) and DIR/maps/*.npz (cached maps: a rerun reuses them).

The config (YAML, keys of fstmatch.hypotheses.VerifyConfig) names the manifest and a checkpoint
(run directory or .safetensors) per role: source, target, det (H1, H3), det_paired and
det_unpaired (H2), optionally fstmatching (ground-truth score). Another framework's detector is
given as {path: ..., arch: ...}, e.g. det: {path: xception_best.pth, arch: deepfakebench:xception},
with images.convention: deepfakebench (its face alignment; the encoders must be trained on it).
See docs/hypotheses.md and docs/models.md ("Explain your DeepfakeBench detector").

examples:
  fstmatch verify --hypothesis 1 --config verify.yaml --out out/verify
  fstmatch verify --hypothesis 1 2 3 --config verify.yaml --out out/verify --set shapley.budget=200
  fstmatch verify --preset paper --config checkpoints.yaml --out out/verify   # the paper's 224 px, grid 16
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hypothesis", nargs="+", type=int, choices=[1, 2, 3], default=[1, 2, 3], metavar="N",
                   help="hypotheses to verify: 1, 2 and/or 3 (default: all)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument("--preset", help="shipped verify preset (fstmatch/presets/verify/*.yaml)")
    add_config_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    from fstmatch.browse import write_explorer
    from fstmatch.config import load_config
    from fstmatch.hypotheses.config import VerifyConfig
    from fstmatch.hypotheses.verify import verify
    from fstmatch.report import format_verify, hypothesis_blocks, write_report

    cfg = load_config(VerifyConfig, kind="verify", preset=args.preset, file=args.config, overrides=args.overrides)
    summary = verify(cfg, args.out, hypotheses=sorted(set(args.hypothesis)), progress=not args.no_progress)
    print(format_verify(summary))
    blocks = [("h", 1, "fstmatch verify"), *hypothesis_blocks(summary)]
    md, page = write_report(args.out, blocks, title="fstmatch verify")
    print(f"wrote {args.out / 'summary.json'}, {md}, {page}")
    write_explorer(args.out, progress=not args.no_progress)  # DIR/explorer/index.html (fstmatch browse)
    return 0
