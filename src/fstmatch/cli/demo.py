"""``fstmatch demo``: the whole study on synthetic data in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from fstmatch.cli._common import add_config_arguments

DEFAULT_PRESET = "laptop"  # = fstmatch.pipeline.demo.DEFAULT_PRESET (tests check); not imported: heavy

HELP = "run everything on FST-Synth: generate, prepare, train 7 models, verify H1-H3, test, report"
DESCRIPTION = """\
One command, no data, no network, no GPU. Generates FST-Synth (a synthetic FaceForensics++),
prepares face crops, trains the source/target encoders and the detectors (raw-trained for the
hypotheses; all-compression det and FST-Matching for the detection comparison), verifies the
paper's hypotheses 1-3 with Shapley values, tests detection on raw/c23/c40 and writes
DIR/report.md, DIR/report.html (figures inline) and DIR/summary.json.

With --seeds K1 K2 ... it is a study: the data is made once (or once per seed with
--data-per-seed), every model is trained once per training seed into DIR/seed-<k>/ (each with its
own report, explorer and log), seeds running concurrently (--jobs, one torch thread each), and
DIR/report.md judges every claim across the seeds (mean, between-seed SE, 95 % t interval, the
minimum effect the study detects at 80 % power, spread beyond the per-image SEM, fraction of seeds
holding, one verdict per claim: held / not supported / contradicted).

Resumable: rerunning the same command skips every finished stage (DIR/demo_state.json, and
DIR/seed-<k>/demo_state.json in a study); a stage whose settings changed is redone, with everything
downstream of it; a stage that was interrupted is redone.

presets (fstmatch/presets/demo/):
  laptop  the default: detectors that detect (raw AUC >= 0.93), 4 test pairs, 100 analysed frames;
          <= 15 minutes on an idle 2-core CPU
  tiny    the smoke-size run of the tests and CI (a few minutes; its detectors barely learn)

examples:
  fstmatch demo --out demo-out
  fstmatch demo --out demo-tiny --preset tiny
  fstmatch demo --out demo-out --set verify.shapley.budget=64
  fstmatch demo --out study --seeds 0 1 2 3 4 5 6 7 8 9      # ten training seeds, one verdict per claim
  fstmatch demo --out study-data --seeds 0 1 2 --data-per-seed   # the data varies with the seed too
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (resumable)")
    p.add_argument("--preset", default=DEFAULT_PRESET, help="demo preset: laptop or tiny (default: %(default)s)")
    p.add_argument("--seeds", nargs="+", type=int, metavar="K",
                   help="training seeds of a study (at least two, >= 0; default: one run)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="a study's seeds running at once, one torch thread each (default: one per CPU core)")
    p.add_argument("--data-per-seed", action="store_true",
                   help="a study makes FST-Synth data per seed (synth seed = the seed), not once")
    add_config_arguments(p)


def run(args: argparse.Namespace) -> int:
    from fstmatch.pipeline.demo import run_demo
    from fstmatch.report.content import format_verify
    from fstmatch.report.study import format_study

    overrides = list(args.overrides)
    if args.seeds is not None:
        overrides.append(f"seeds=[{', '.join(map(str, args.seeds))}]")
    if args.jobs is not None:
        overrides.append(f"jobs={args.jobs}")
    if args.data_per_seed:
        overrides.append("data_per_seed=true")
    summary = run_demo(args.out, preset=args.preset, overrides=overrides, config_file=args.config)
    print(format_study(summary) if "aggregate" in summary else format_verify(summary))
    print(f"stages {summary['seconds']['total']:.0f} s in all, this invocation "
          f"{summary['invocation_seconds']:.0f} s; report: {args.out / 'report.html'}")
    return 0
