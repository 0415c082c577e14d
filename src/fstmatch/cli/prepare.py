"""``fstmatch prepare ROOT OUT``: FF++ videos to face crops, landmarks and a manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from fstmatch.cli._common import add_compressions_argument, add_methods_argument, positive_int

HELP = "extract face crops, landmarks and labels from an FF++ tree into OUT/manifest.jsonl"
DESCRIPTION = """\
Decode K evenly spaced frames of every video of an FF++ tree (the real FaceForensics++ or
FST-Synth), find the largest face with dlib (68 landmarks), and save a square crop with margin as
PNG plus one manifest row per frame (OUT/manifest.jsonl). Original videos are always included
(the real class); --methods selects the manipulations. FST-Synth fakes also get crops of their
ground-truth masks. Problems (broken files, no face, bad names, videos missing from the split
files, unreadable folders) are recorded in OUT/failures.jsonl and do not stop the run. Without
ROOT/splits (and --splits), the official FF++ splits shipped with fstmatch are used; videos the
splits do not cover are skipped, with a warning giving their count.

Crops keep context around the face and the 68 landmarks; faces are aligned when loaded, in the
convention each command asks for (--convention of test/explain, images.convention of verify).
--convention here only sets the default --margin to what that convention's aligned face needs.

Rerunning the same command resumes: finished videos are not redone. The exit status is 0 unless
nothing could be prepared (2), or --strict is given and a problem was recorded (1).

example:
  fstmatch prepare data/ffpp prepared --compressions c23 --frames-per-video 32 --workers 2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, metavar="ROOT", help="FF++ tree (original_sequences/, manipulated_sequences/)")
    parser.add_argument("out", type=Path, metavar="OUT", help="output folder (created; rerun to resume)")
    parser.add_argument("--frames-per-video", type=positive_int, default=32, metavar="K",
                        help="frames taken per video, evenly spaced (default: %(default)s)")
    add_methods_argument(parser, help_default="all present under ROOT")
    add_compressions_argument(parser, help_default="all present under ROOT")
    parser.add_argument("--splits", type=Path, default=None, metavar="DIR",
                        help="folder with train.json, val.json, test.json (default: ROOT/splits, else the "
                             "official FF++ splits shipped with fstmatch)")
    parser.add_argument("--workers", type=positive_int, default=1, metavar="W",
                        help="worker processes, one video at a time each (default: %(default)s)")
    parser.add_argument("--predictor", type=Path, default=None, metavar="PATH",
                        help="another dlib shape predictor .dat (its first 68 points are used; default: "
                             "face_recognition_models' 68-point model)")
    parser.add_argument("--landmarks", choices=("dlib", "truth"), default="dlib",
                        help="dlib: detect and fit landmarks (default); truth: FST-Synth ground-truth landmarks")
    parser.add_argument("--convention", choices=("fstmatch", "deepfakebench"), default="fstmatch",
                        help="alignment convention the crops are for; sets the default --margin to the context "
                             "its aligned face needs (fstmatch 0.6, deepfakebench 1.0; default: %(default)s)")
    parser.add_argument("--margin", type=float, default=None,
                        help="context on each side of the landmarks' box, fraction of its size "
                             "(default: the convention's)")
    parser.add_argument("--crop-size", type=positive_int, default=None, metavar="PX",
                        help="resize crops to PX x PX (default: keep the box's native resolution)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any problem was recorded")


def run(args: argparse.Namespace) -> int:
    from fstmatch.data.preprocess import prepare
    from fstmatch.errors import UserError
    from fstmatch.utils.io import read_jsonl

    if args.margin is not None and args.margin < 0:
        raise UserError(f"--margin must be >= 0, got {args.margin}")
    out = prepare(
        args.root, args.out, frames_per_video=args.frames_per_video, methods=args.methods,
        compressions=args.compressions, splits=args.splits, workers=args.workers, predictor=args.predictor,
        landmarks=args.landmarks, margin=args.margin, crop_size=args.crop_size, convention=args.convention,
        strict=False,
    )
    if args.strict and read_jsonl(out / "failures.jsonl"):
        return 1
    return 0
