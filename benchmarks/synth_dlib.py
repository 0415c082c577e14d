"""Share of FST-Synth raw frames in which dlib's HOG frontal detector finds the face.

Renders frames directly (no files): every ``--step``-th frame of the first ``--videos`` real
videos and as many fakes, per preset; upsample 0, then 1 (what ``fstmatch prepare`` falls back to).

    python benchmarks/synth_dlib.py --presets micro tiny small --videos 8 --step 4
"""

from __future__ import annotations

import argparse

import dlib

from fstmatch import ffpp
from fstmatch.config import load_config
from fstmatch.synth import SynthConfig, VideoJob, render_video


def detection_rate(preset: str, seed: int, videos: int, step: int) -> dict[str, float]:
    """Fractions of sampled raw frames with a face found at upsample 0 and at upsample <= 1."""
    cfg = load_config(SynthConfig, kind="synth", preset=preset)
    detector = dlib.get_frontal_face_detector()
    jobs = [VideoJob(ffpp.REAL, i, i) for i in range(min(videos, cfg.num_identities))]
    jobs += [VideoJob(ffpp.METHODS[k % len(ffpp.METHODS)], 2 * k, 2 * k + 1) for k in range(videos)
             if 2 * k + 1 < cfg.num_identities]
    found0 = found1 = total = 0
    for job in jobs:
        frames = render_video(cfg, seed, job)["frames"]
        for frame in frames[::step]:
            total += 1
            hit0 = len(detector(frame, 0)) > 0
            found0 += hit0
            found1 += hit0 or len(detector(frame, 1)) > 0
    return {"frames": total, "upsample0": found0 / total, "upsample1": found1 / total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["micro", "tiny", "small"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--step", type=int, default=4)
    args = ap.parse_args()
    print("| preset | frames | found, upsample 0 | found, upsample <= 1 |\n|---|---|---|---|")
    for preset in args.presets:
        r = detection_rate(preset, args.seed, args.videos, args.step)
        print(f"| {preset} | {r['frames']} | {r['upsample0']:.3f} | {r['upsample1']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
