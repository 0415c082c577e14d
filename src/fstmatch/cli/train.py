"""``fstmatch train``: train a detector, an identity encoder or the FST-Matching model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fstmatch.cli._common import add_compressions_argument, add_config_arguments, add_methods_argument

HELP = "train a detector (det), identity encoder (source/target) or FST-Matching model"
INTERRUPT_HINT = "rerun the same command with --resume to continue from the last checkpoint"
DESCRIPTION = """\
Train one model on the frames of a prepared manifest and write a run directory:
model.safetensors, state.pt (resume state), config.yaml, log.jsonl, tb/ (TensorBoard).

Config: defaults < --preset < --config FILE < the options below < --set key=value.
Multi-GPU: torchrun --nproc_per_node 8 -m fstmatch train ... (only rank 0 writes).

examples:
  fstmatch train --data prep/manifest.jsonl --model det --out runs/det
  fstmatch train --data prep --model source --out runs/src --set data.holdout=1
  fstmatch train --data prep --model det --out runs/det-paired --set-name paired
  fstmatch train --data prep --model det --out runs/det --resume
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, metavar="MANIFEST", help="manifest.jsonl (or its folder)")
    p.add_argument("--model", required=True, choices=["det", "source", "target", "fstmatching"],
                   help="what to train")
    p.add_argument("--out", required=True, type=Path, metavar="RUN_DIR", help="run directory")
    p.add_argument("--preset", default="default", help="shipped config preset (default: %(default)s)")
    p.add_argument("--set-name", choices=["all", "paired", "unpaired"], help="hypothesis-2 training set")
    add_methods_argument(p, help_default="the config's, all")
    add_compressions_argument(p, help_default="the config's, all")
    add_config_arguments(p)
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    p.add_argument("--force", action="store_true",
                   help="restart over an existing run, or resume with a changed config")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from fstmatch.config import load_config
    from fstmatch.train import TrainConfig, TrainingDiverged, train

    extra: dict = {"data": {"manifest": str(args.data)}, "model": {"role": args.model}}
    if args.set_name:
        extra["data"]["set_name"] = args.set_name
    if args.methods:
        extra["data"]["methods"] = args.methods
    if args.compressions:
        extra["data"]["compressions"] = args.compressions
    cfg = load_config(TrainConfig, kind="train", preset=args.preset, file=args.config,
                      overrides=args.overrides, extra=extra)
    from fstmatch.utils.dist import cleanup, is_main

    try:
        path = train(cfg, args.out, resume=args.resume, force=args.force, progress=not args.no_progress)
        if is_main():
            print(f"wrote {path}")
    except TrainingDiverged as e:
        print(f"fstmatch train: training diverged: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        cleanup()
    return 0
