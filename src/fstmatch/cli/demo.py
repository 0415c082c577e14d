"""``fstmatch demo``: the whole study on synthetic data in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from fstmatch.cli._common import add_config_arguments

HELP = "run everything on FST-Synth: generate, prepare, train 7 models, verify H1-H3, test, report"
DESCRIPTION = """\
One command, no data, no network, no GPU. Generates FST-Synth (a synthetic FaceForensics++),
prepares face crops, trains the source/target encoders and the detectors (raw-trained for the
hypotheses; all-compression det and FST-Matching for the detection comparison), verifies the
paper's hypotheses 1-3 with Shapley values, tests detection on raw/c23/c40 and writes
DIR/report.md, DIR/report.html (figures inline) and DIR/summary.json.

With --seeds K1 K2 ... it is a study: the data is made once, every model is trained once per
training seed into DIR/seed-<k>/ (each with its own report), and DIR/report.md judges every claim
across the seeds (mean, between-seed SE, 95 % t interval, spread beyond the per-image SEM,
fraction of seeds holding, one verdict per claim: held / not supported / contradicted).

Resumable: rerunning the same command skips every finished stage (DIR/demo_state.json); a stage
whose settings changed is redone, with everything downstream of it.

presets (fstmatch/presets/demo/):
  tiny   the smoke-size study, <= 15 minutes on a 2-core CPU
  small  more videos, frames and Shapley orderings (48 min on 2 cores; its detectors barely learn at
         these settings yet: RESULTS.md)

examples:
  fstmatch demo --out demo-out
  fstmatch demo --out demo-small --preset small
  fstmatch demo --out demo-out --set verify.shapley.budget=64
  fstmatch demo --out study-tiny --seeds 0 1 2      # three training seeds, one verdict per claim
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (resumable)")
    p.add_argument("--preset", default="tiny", help="demo preset: tiny or small (default: %(default)s)")
    p.add_argument("--seeds", nargs="+", type=int, metavar="K",
                   help="training seeds of a study (at least two; the data is made once; default: one run)")
    add_config_arguments(p)


def run(args: argparse.Namespace) -> int:
    from fstmatch.browse import write_explorer
    from fstmatch.hypotheses.demo import run_demo
    from fstmatch.hypotheses.study import format_study
    from fstmatch.report.content import format_verify

    overrides = list(args.overrides)
    if args.seeds is not None:
        overrides.append(f"seeds=[{', '.join(map(str, args.seeds))}]")
    summary = run_demo(args.out, preset=args.preset, overrides=overrides, config_file=args.config)
    print(format_study(summary) if "aggregate" in summary else format_verify(summary))
    print(f"stages {summary['seconds']['total']:.0f} s in all, this invocation "
          f"{summary['invocation_seconds']:.0f} s; report: {args.out / 'report.html'}")
    # the map explorer (fstmatch browse): DIR/explorer/index.html, per seed in a study
    for where in ([args.out / f"seed-{k}" for k in summary["seeds"]] if "aggregate" in summary else [args.out]):
        write_explorer(where)
    return 0
