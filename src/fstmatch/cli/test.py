"""``fstmatch test``: detection metrics (docs/method.md §7) or identity accuracy of a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

from fstmatch.cli._common import (
    add_compressions_argument,
    add_geometry_arguments,
    add_methods_argument,
    add_model_arguments,
)

HELP = "test a trained model: AUC/ACC/EER/AP/video AUC per method x compression, or identity accuracy"
DESCRIPTION = """\
Evaluate a checkpoint on one split of a manifest. Prints a table and writes JSON (default:
RUN_DIR/metrics.json when --checkpoint is a run directory). Input geometry (convention, canvas,
face width, scale) comes from the run's config.yaml when there is one; the options below override
it. Another framework's detector is named with --arch and tested on faces in its own convention.

examples:
  fstmatch test --data prep/manifest.jsonl --checkpoint runs/det
  fstmatch test --data prep --checkpoint runs/src/model.safetensors --split train --out src.json
  fstmatch test --data prep --checkpoint xception_best.pth --arch deepfakebench:xception \\
      --convention deepfakebench --out xception.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, metavar="MANIFEST", help="manifest.jsonl (or its folder)")
    add_model_arguments(p)
    p.add_argument("--split", default="test", help="split to test on (default: %(default)s)")
    p.add_argument("--out", type=Path, metavar="FILE", help="metrics JSON (default: RUN_DIR/metrics.json)")
    add_methods_argument(p)
    add_compressions_argument(p)
    p.add_argument("--role", choices=["det", "source", "target", "fstmatching"],
                   help="what the model predicts (default: from the checkpoint)")
    add_geometry_arguments(p)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from fstmatch.cli._common import resolve_geometry
    from fstmatch.data import read_manifest
    from fstmatch.errors import UserError
    from fstmatch.models import load_model
    from fstmatch.train import evaluate, format_table
    from fstmatch.train.data import select_rows
    from fstmatch.utils.dist import resolve_device
    from fstmatch.utils.io import atomic_write_json

    manifest = args.data / "manifest.jsonl" if args.data.is_dir() else args.data
    if not manifest.is_file():
        raise UserError(f"manifest not found: {manifest}")
    ckpt = args.checkpoint
    if not ckpt.exists():
        raise UserError(f"checkpoint not found: {ckpt}")
    geometry = resolve_geometry(args, ckpt)
    model = load_model(ckpt, arch=args.arch)
    rows = read_manifest(manifest)
    rows = select_rows(rows, args.split, args.methods, args.compressions)
    device = resolve_device(args.device)
    model.to(device)
    result = evaluate(model, rows, manifest.parent, role=args.role, batch_size=args.batch_size, device=device,
                      amp=args.amp, num_workers=args.num_workers, progress=not args.no_progress, geometry=geometry)
    result.update({"checkpoint": str(ckpt), "arch": args.arch, "manifest": str(manifest), "split": args.split,
                   **geometry.to_dict()})
    print(format_table(result))
    out = args.out or (ckpt / "metrics.json" if ckpt.is_dir() else None)
    if out is not None:
        atomic_write_json(out, result)
        print(f"wrote {out}")
    return 0
