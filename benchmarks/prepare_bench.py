"""Throughput and landmark accuracy of ``fstmatch prepare`` against a reference-style baseline.

Baseline (written here, as the reference code works): OpenCV decodes every frame of the video,
the same K evenly spaced frames are kept, dlib's frontal detector runs at upsample 1 on the full
RGB frame, the 68-point predictor fits the largest face, the crop is written as PNG; one process.
``prepare`` runs as shipped (PyAV, stop after the last frame needed, detector on a downscaled
grey frame, ``--workers`` processes). Both see the same videos; both times include loading the
models; CPU time (this process and its finished children) is reported beside wall time, as it
is steadier on a shared machine. Landmark error: mean distance to FST-Synth's ground truth / inter-ocular distance (NME).

The videos are a subset of an FST-Synth set at one compression, copied into a work folder;
``--height H`` re-encodes them resized to H px high first (e.g. 720, FF++'s resolution; the
synthetic frames are small, where downscaling the detector's input cannot help).

    python benchmarks/prepare_bench.py DATA/fst-synth-tiny --videos 24 --frames 8 --workers 2
    python benchmarks/prepare_bench.py DATA/fst-synth-tiny --videos 12 --frames 8 --height 720
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from fstmatch import ffpp
from fstmatch.data import inter_ocular, prepare, read_manifest
from fstmatch.data.align import crop_to_frame
from fstmatch.data.dataset import png_size
from fstmatch.data.faces import default_predictor_path, extract_box, square_box
from fstmatch.data.video import frame_indices


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (prepare's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load_predictor() -> None:
    """Load the 68-point model once (its CPU time is reported: each process pays it)."""
    import dlib

    dlib.shape_predictor(str(default_predictor_path()))


def pick_videos(root: Path, comp: str, n: int) -> list[tuple[str, str]]:
    """``n`` videos (method, name): reals and fakes of every method in turn, in name order."""
    lists = [[(m, p.stem) for p in sorted(ffpp.video_dir(root, m, comp).glob("*.mp4"))] for m in (ffpp.REAL, *ffpp.METHODS)]
    picked = []
    for i in range(max(map(len, lists))):
        picked += [lst[i] for lst in lists if i < len(lst)]
    return picked[:n]


def build_tree(root: Path, work: Path, comp: str, videos: list[tuple[str, str]], height: int | None) -> None:
    """Copy (or resize and re-encode) the videos and their ground-truth landmarks into ``work``."""
    shutil.copytree(root / "splits", work / "splits")
    for method, name in videos:
        src, dst = ffpp.video_path(root, method, comp, name), ffpp.video_path(work, method, comp, name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with np.load(ffpp.gt_path(root, method, comp, name)) as gt:
            landmarks = gt["landmarks"].astype(np.float64)
        if height is None:
            shutil.copy(src, dst)
        else:
            factor = _resize_video(src, dst, height)
            landmarks = (landmarks + 0.5) * factor - 0.5
        gt_dst = ffpp.gt_path(work, method, comp, name)
        gt_dst.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(gt_dst, landmarks=landmarks.astype(np.float32))


def _resize_video(src: Path, dst: Path, height: int) -> float:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream_in = inp.streams.video[0]
        factor = height / stream_in.height
        width = round(stream_in.width * factor / 2) * 2
        stream = out.add_stream("libx264", rate=stream_in.average_rate or 25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in inp.decode(stream_in):
            big = cv2.resize(frame.to_ndarray(format="rgb24"), (width, height), interpolation=cv2.INTER_CUBIC)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(big, format="rgb24")))
        out.mux(stream.encode())
    return factor


def baseline(work: Path, comp: str, videos: list[tuple[str, str]], k: int, out: Path) -> dict[tuple, np.ndarray]:
    """Reference-style preprocessing; returns landmarks (frame pixels) per (method, name, frame)."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(default_predictor_path()))
    found = {}
    for method, name in videos:
        cap = cv2.VideoCapture(str(ffpp.video_path(work, method, comp, name)))
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(bgr)
        cap.release()
        for index in frame_indices(len(frames), k):
            rgb = cv2.cvtColor(frames[index], cv2.COLOR_BGR2RGB)
            rects = detector(rgb, 1)
            if not rects:
                continue
            r = max(rects, key=lambda r: r.area())
            shape = predictor(rgb, r)
            lm = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
            crop = extract_box(rgb, square_box(lm, 0.6))
            path = out / method / name / f"{index:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            found[(method, name, index)] = lm
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="an FST-Synth set (fstmatch synth OUT --preset tiny)")
    parser.add_argument("--compression", default="c23", choices=ffpp.COMPRESSIONS)
    parser.add_argument("--videos", type=int, default=24, help="number of videos (reals and every method)")
    parser.add_argument("--frames", type=int, default=8, help="frames per video (K)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--height", type=int, default=None, help="resize the videos to this height first")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="prepare-bench-") as tmp:
        work = Path(tmp) / "root"
        videos = pick_videos(args.root, args.compression, args.videos)
        build_tree(args.root, work, args.compression, videos, args.height)
        with av.open(str(ffpp.video_path(work, videos[0][0], args.compression, videos[0][1]))) as c:
            size = f"{c.streams.video[0].width}x{c.streams.video[0].height}, {c.streams.video[0].frames} frames"
        expected = sum(len(frame_indices(_frames(work, args.compression, v), args.frames)) for v in videos)

        t0, c0 = time.perf_counter(), cpu_seconds()
        base = baseline(work, args.compression, videos, args.frames, Path(tmp) / "baseline")
        t_base, c_base = time.perf_counter() - t0, cpu_seconds() - c0

        t0, c0 = time.perf_counter(), cpu_seconds()
        out = prepare(work, Path(tmp) / "prep", frames_per_video=args.frames, compressions=[args.compression],
                      workers=args.workers, progress=False)
        t_ours, c_ours = time.perf_counter() - t0, cpu_seconds() - c0
        c0 = cpu_seconds()
        load_predictor()
        c_load = cpu_seconds() - c0
        rows = read_manifest(out)
        ours = {
            (r["method"], r["video"], r["frame"]):
                crop_to_frame(np.array(r["landmarks"]), r["box"], png_size(out / r["path"])[0])
            for r in rows
        }
    result = {
        "videos": len(videos), "video_size": size, "frames_expected": expected, "workers": args.workers,
        "model_load_cpu_seconds": c_load,
        "baseline": {"seconds": t_base, "cpu_seconds": c_base, "fps": expected / t_base,
                     "detection_rate": len(base) / expected, "nme": landmark_nme(args, base)},
        "prepare": {"seconds": t_ours, "cpu_seconds": c_ours, "fps": expected / t_ours,
                    "detection_rate": len(ours) / expected, "nme": landmark_nme(args, ours)},
    }
    result["speedup"] = t_base / t_ours
    result["cpu_ratio"] = c_base / c_ours
    print(json.dumps(result, indent=2))
    print(f"\n{len(videos)} videos ({size}), K={args.frames}: baseline {result['baseline']['fps']:.1f} frames/s, "
          f"prepare {result['prepare']['fps']:.1f} frames/s ({args.workers} workers): {result['speedup']:.1f}x wall, "
          f"{result['cpu_ratio']:.1f}x CPU time")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def _frames(work: Path, comp: str, video: tuple[str, str]) -> int:
    with av.open(str(ffpp.video_path(work, video[0], comp, video[1]))) as c:
        return c.streams.video[0].frames


def landmark_nme(args: argparse.Namespace, landmarks: dict[tuple, np.ndarray]) -> float:
    """NME against the original set's ground truth, scaled into the benchmarked frames when resized."""
    factor = None
    errors = []
    for (method, name, index), lm in landmarks.items():
        with np.load(ffpp.gt_path(args.root, method, args.compression, name)) as gt:
            truth = gt["landmarks"][index].astype(np.float64)
        if args.height is not None:
            if factor is None:
                with av.open(str(ffpp.video_path(args.root, method, args.compression, name))) as c:
                    factor = args.height / c.streams.video[0].height
            truth = (truth + 0.5) * factor - 0.5
        errors.append(np.linalg.norm(lm - truth, axis=1).mean() / inter_ocular(truth))
    return float(np.mean(errors)) if errors else float("nan")


if __name__ == "__main__":
    main()
