"""``fstmatch synth OUT --preset tiny``: generate FST-Synth, a synthetic FaceForensics++."""

from __future__ import annotations

import argparse
from pathlib import Path

from fstmatch.cli._common import positive_int

HELP = "generate FST-Synth, a synthetic FaceForensics++ (videos, splits, ground-truth masks)"
DESCRIPTION = """\
Generate a synthetic FaceForensics++ in the FF++ layout: procedural identities, one real video
each, fakes A_B and B_A for every pair and method (Deepfakes, Face2Face, FaceSwap, NeuralTextures,
FaceShifter), H.264 at raw (lossless), c23 and c40, split files, and per-video ground truth
(<comp>/gt/<name>.npz: landmarks, donor and trace masks). Writes OUT/contact_sheet.png.

Presets: micro (tests, seconds), tiny (demo, < 1 min), small (minutes), ffpp (FF++ sizes, hours).
An interrupted run resumes when rerun with the same arguments.

examples:
  fstmatch synth data/fst-synth --preset tiny --workers 2
  fstmatch synth data/big --preset small --set frames=64 --seed 1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fstmatch.config import preset_names

    parser.add_argument("out", type=Path, metavar="OUT", help="output folder (new or empty; see --overwrite)")
    parser.add_argument("--preset", default="tiny", metavar="NAME",
                        help=f"size preset: {', '.join(preset_names('synth'))} (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--workers", type=positive_int, default=1, metavar="W",
                        help="processes rendering videos in parallel (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing FST-Synth set (or write into a non-empty folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (e.g. frames=32, pairs=[10,2,2]); repeatable")


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from fstmatch import ffpp
    from fstmatch.synth import generate

    start = time.perf_counter()
    out = generate(args.out, preset=args.preset, seed=args.seed, workers=args.workers,
                   overwrite=args.overwrite, overrides=args.overrides, progress=True)
    record = json.loads((out / "synth.json").read_text("utf-8"))
    cfg = record["config"]
    splits = ffpp.read_splits(out / "splits")
    n_ids = 2 * sum(len(p) for p in splits.values())
    print(f"FST-Synth '{args.preset}' (seed {args.seed}) in {out}")
    print(f"  identities {n_ids}; pairs train/val/test {'/'.join(str(len(splits[s])) for s in ffpp.SPLITS)}")
    print(f"  videos {record['videos']} per compression ({record['rendered']} rendered now, "
          f"{record['videos'] - record['rendered']} already there); "
          f"{cfg['frames']} frames of {cfg['width']}x{cfg['height']}; compressions {', '.join(cfg['compressions'])}")
    print("  ground truth: <compression folder>/gt/<video>.npz (landmarks, donor_mask, trace_mask, trace_kind)")
    print(f"  done in {time.perf_counter() - start:.1f} s")
    print(f"look at it: {out / 'contact_sheet.png'} (one row per method: source, donor, fake, difference, masks)")
    return 0
