"""How hard is FST-Synth, next to FaceForensics++'s published difficulty?

A fixed protocol, run as a new user would (the CLI, one thread per process):

1. ``fstmatch synth`` the ``small`` preset (seed 21 by default), 2 workers;
2. ``fstmatch prepare`` 8 frames a video;
3. train the ``cpu-small`` detector 3 epochs without augmentation, once on all compressions and
   once on raw only;
4. test both on the test split, per compression and per method (frame AUC, video AUC).

It prints the published FF++ figures beside its own, with pass/fail against the targets of
issue 10 (FF++'s properties, not the project's hypotheses), and writes ``OUT/synth_difficulty.json``
and ``.md``. ``--set`` changes the synth config (a cheaper proxy while iterating, e.g.
``--set pairs=[6,2,2]``); a run with ``--set`` is marked as not the protocol.

    python benchmarks/synth_difficulty.py --work /tmp/sd --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
COMPS = ("raw", "c23", "c40")

# Published figures (see docs/synth.md for the sources).
PUBLISHED = {
    "FF++ (Rössler et al. 2019), XceptionNet accuracy, all four methods": {"raw": 99.26, "c23": 95.73, "c40": 81.00},
    "F3-Net (Qian et al. 2020), retrained Xception AUC": {"raw": 99.2, "c23": 96.3, "c40": 89.3},
    "F3-Net (Qian et al. 2020), Face X-ray AUC": {"c23": 87.4, "c40": 61.6},
    "DeepfakeBench, c23-trained detectors tested on c40 (frame AUC drop)": {"c23 - c40": 0.14},
    "FF++ XceptionNet LQ (c40) accuracy per method": {"NeuralTextures": "80-82", "others": "92-96"},
}


def _run(cmd: list[str], log: Path) -> float:
    """Run one CLI step (appending to ``log``); returns its wall time in seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    with log.open("a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if proc.returncode:
        sys.exit(f"step failed ({proc.returncode}): {' '.join(cmd)}; see {log}")
    return time.perf_counter() - start


def _fstmatch() -> list[str]:
    return [sys.executable, "-m", "fstmatch"]


def targets(all_c: dict, raw_only: dict) -> list[tuple[str, float, str, bool]]:
    """(target, measured, threshold, pass) rows from the two metrics JSONs."""
    auc = {c: all_c["by_compression"][c]["auc"] for c in COMPS}
    raw_auc = {c: raw_only["by_compression"][c]["auc"] for c in COMPS}

    def hardest(comp: str) -> list[str]:
        return sorted(METHODS, key=lambda m: all_c["by_method"][f"{m}/{comp}"]["auc"])[:2]

    return [
        ("raw frame AUC (all-compression detector)", auc["raw"], ">= 0.93", auc["raw"] >= 0.93),
        ("raw - c40 (all-compression detector)", auc["raw"] - auc["c40"], ">= 0.08", auc["raw"] - auc["c40"] >= 0.08),
        ("c23 - c40 (all-compression detector)", auc["c23"] - auc["c40"], ">= 0.05", auc["c23"] - auc["c40"] >= 0.05),
        ("raw - c40 (raw-trained detector)", raw_auc["raw"] - raw_auc["c40"], ">= 0.12",
         raw_auc["raw"] - raw_auc["c40"] >= 0.12),
        ("NeuralTextures among the two hardest at c40", float("nan"), "two lowest: " + ", ".join(hardest("c40")),
         "NeuralTextures" in hardest("c40")),
        ("FaceShifter among the two hardest at raw", float("nan"), "two lowest: " + ", ".join(hardest("raw")),
         "FaceShifter" in hardest("raw")),
    ]


def report(all_c: dict, raw_only: dict, meta: dict) -> str:
    """The markdown report: own figures, published figures, targets."""
    lines = [f"# FST-Synth difficulty ({meta['date']})", "", f"Protocol: {meta['protocol']}", "",
             f"Command: `{meta['command']}`", "",
             f"Machine: {meta['machine']}. Step times (s, wall): "
             + ", ".join(f"{k} {v:.0f}" for k, v in meta["times"].items()), "",
             "## Frame AUC (video AUC) on the test split", "",
             "| detector | raw | c23 | c40 | raw - c40 | c23 - c40 |", "|---|---|---|---|---|---|"]
    for name, res in (("all compressions", all_c), ("raw only", raw_only)):
        bc = res["by_compression"]
        cells = [f"{bc[c]['auc']:.3f} ({bc[c].get('video_auc', float('nan')):.3f})" for c in COMPS]
        lines.append(f"| {name} | {' | '.join(cells)} | {bc['raw']['auc'] - bc['c40']['auc']:+.3f} | "
                     f"{bc['c23']['auc'] - bc['c40']['auc']:+.3f} |")
    lines += ["", "## Per method, frame AUC (all-compression detector)", "",
              "| method | raw | c23 | c40 |", "|---|---|---|---|"]
    for m in METHODS:
        lines.append(f"| {m} | " + " | ".join(f"{all_c['by_method'][f'{m}/{c}']['auc']:.3f}" for c in COMPS) + " |")
    lines += ["", "## Published FF++ figures", "", "| source | figures |", "|---|---|"]
    for src, figs in PUBLISHED.items():
        lines.append(f"| {src} | " + ", ".join(f"{k} {v}" for k, v in figs.items()) + " |")
    lines += ["", "## Targets (issue 10)", "", "| target | measured | threshold | result |", "|---|---|---|---|"]
    for name, value, thr, ok in targets(all_c, raw_only):
        shown = "" if value != value else f"{value:.3f}"
        lines.append(f"| {name} | {shown} | {thr} | {'pass' if ok else 'FAIL'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (data, crops, runs; resumable)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where the report goes")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--frames-per-video", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="synth config override (makes it a proxy, not the protocol)")
    ap.add_argument("--name", default="synth_difficulty", help="report file stem")
    args = ap.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    cli = _fstmatch()
    times: dict[str, float] = {}
    synth = [*cli, "synth", str(work / "data"), "--preset", args.preset, "--seed", str(args.seed),
             "--workers", str(args.workers)]
    for o in args.overrides:
        synth += ["--set", o]
    times["synth"] = _run(synth, log)
    times["prepare"] = _run([*cli, "prepare", str(work / "data"), str(work / "prep"), "--frames-per-video",
                             str(args.frames_per_video), "--workers", str(args.workers)], log)
    manifest = str(work / "prep" / "manifest.jsonl")
    results = {}
    for name, comps in (("all", []), ("raw_only", ["--compressions", "raw"])):
        run = work / "runs" / name
        times[f"train {name}"] = _run([*cli, "train", "--data", manifest, "--model", "det", "--out", str(run),
                                       "--preset", "cpu-small", *comps, "--set", "input.augment=false", "--set",
                                       f"epochs={args.epochs}", "--force", "--no-progress"], log)
        out = work / f"metrics_{name}.json"
        times[f"test {name}"] = _run([*cli, "test", "--data", manifest, "--checkpoint", str(run), "--split", "test",
                                      "--out", str(out), "--no-progress"], log)
        results[name] = json.loads(out.read_text())
    protocol = (f"`{args.preset}` preset, seed {args.seed}, {args.frames_per_video} frames a video, `cpu-small` "
                f"detector, {args.epochs} epochs, no augmentation")
    if args.overrides:
        protocol += f"; PROXY, synth overrides {args.overrides}"
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "protocol": protocol,
            "machine": "2-core AMD EPYC (AVX2), shared with other jobs, OMP_NUM_THREADS=1", "times": times,
            "command": " ".join(sys.argv)}
    text = report(results["all"], results["raw_only"], meta)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(text)
    rows = [{"target": n, "measured": None if v != v else v, "threshold": t, "pass": ok}
            for n, v, t, ok in targets(results["all"], results["raw_only"])]
    summary = {"meta": meta, "targets": rows,
               **{k: {"by_compression": v["by_compression"], "by_method": v["by_method"]} for k, v in results.items()}}
    (args.out / f"{args.name}.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
