"""``prepare``: an FF++ tree (real or FST-Synth) to face crops, landmarks and ``OUT/manifest.jsonl``.

Output folder::

    OUT/manifest.jsonl          one row per kept frame (docs/INTERFACES.md), manifest order
    OUT/failures.jsonl          one object per problem: {"video": path relative to ROOT, "reason", ...}
    OUT/prepare.json            the settings the crops were made with (a rerun must match them)
    OUT/crops/<method>/<comp>/<video>/<frame>.png   square face crops
    OUT/masks/<method>/<comp>/<video>/<frame>.png   FST-Synth fakes: R = donor*255, G = trace*255
    OUT/.parts/<method>/<comp>/<video>.json         per-video results, written last and atomically

Resuming: a video whose part file exists (made for the same split and labels) is not redone, and
the manifest is always merged from part files, so a killed run, rerun, gives the same manifest
as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from tqdm import tqdm

from fstmatch import ffpp
from fstmatch.data.faces import LandmarkDetector, extract_box, square_box
from fstmatch.data.manifest import Row, row_id, sort_key
from fstmatch.data.video import VideoError, decode_frames
from fstmatch.errors import UserError
from fstmatch.utils.io import atomic_path, atomic_write_json, write_jsonl
from fstmatch.utils.procs import die_with_parent

LAYOUT_HELP = (
    "expected an FF++ layout: ROOT/original_sequences/youtube/<raw|c23|c40>/videos/<A>.mp4, "
    "ROOT/manipulated_sequences/<Method>/<raw|c23|c40>/videos/<A>_<B>.mp4 and optionally "
    "ROOT/splits/{train,val,test}.json (without it, the official FF++ splits shipped with fstmatch)"
)
#: Crop margin per alignment convention: the context its aligned canvas needs. The deepfakebench
#: canvas (margin scale 1.3) reaches further around the face: on micro FST-Synth's 576 frames (dlib
#: landmarks) 9.0% of it (mean) fell outside a margin-0.6 crop, 0.7% at 0.8, 0.03% at 0.9, none at
#: 1.0; the fstmatch canvas at scale 0.9 lies inside at 0.6 (2026-12-01).
DEFAULT_MARGIN = {"fstmatch": 0.6, "deepfakebench": 1.0}
#: Keys added to ``prepare.json`` after it was first written, with what their absence meant.
_LATER_SETTINGS = {"convention": "fstmatch"}


@dataclass(frozen=True)
class Settings:
    """What the crops and rows depend on; stored in ``OUT/prepare.json``."""

    frames_per_video: int
    landmarks: str  # "dlib" or "truth"
    predictor: str | None  # shape predictor path (None: face_recognition_models' 68-point model)
    margin: float  # context around the landmarks' box, fraction of its extent per side
    convention: str  # alignment convention the crops are made for (sets the default margin)
    crop_size: int | None  # crop PNG side, px (None: the box at native resolution)
    detect_side: int  # shorter side of the frame the detector sees, px


@dataclass(frozen=True)
class VideoTask:
    """One video to prepare."""

    method: str
    compression: str
    name: str
    split: str
    label: int
    source: int
    target: int

    @property
    def rel(self) -> str:
        """Path of the video relative to ROOT (as failures report it)."""
        return str(Path(ffpp.video_path("", self.method, self.compression, self.name)))

    def part_path(self, out: Path) -> Path:
        return out / ".parts" / self.method / self.compression / f"{self.name}.json"


# ----------------------------------------------------------------------------------------------
# scanning ROOT

_NOT_IN_SPLITS = "video not in the split files"


def _present(names: Iterable[str], folder_of: Any) -> list[str]:
    return [n for n in names if folder_of(n).is_dir()]


def scan(
    root: Path,
    methods: Sequence[str] | None,
    compressions: Sequence[str] | None,
    split_index: dict[str, str],
) -> tuple[list[VideoTask], list[dict[str, Any]]]:
    """Videos to prepare and the problems found without decoding anything.

    ``None`` for methods / compressions means those present under ROOT; explicitly requested
    folders that are missing are recorded as problems.
    """
    failures: list[dict[str, Any]] = []
    if methods is None:
        methods = _present(ffpp.METHODS, lambda m: root / "manipulated_sequences" / m)
    if compressions is None:
        compressions = [
            c for c in ffpp.COMPRESSIONS
            if any(ffpp.video_dir(root, m, c).is_dir() for m in (ffpp.REAL, *methods))
        ]
    tasks: list[VideoTask] = []
    for method in (ffpp.REAL, *methods):
        for comp in compressions:
            folder = ffpp.video_dir(root, method, comp)
            rel_folder = str(folder.relative_to(root))
            try:
                entries = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".mp4") and not e.name.startswith("."))
            except FileNotFoundError:
                failures.append({"video": rel_folder, "reason": "folder not found"})
                continue
            except OSError as e:  # permissions, a file where the folder should be, I/O errors
                failures.append({"video": rel_folder, "reason": f"unreadable directory: {e.strerror or e}"})
                continue
            for filename in entries:
                name = filename[: -len(".mp4")]
                rel = f"{rel_folder}/{filename}"
                try:
                    labels = ffpp.parse_video_name(name, method)
                except ValueError as e:
                    failures.append({"video": rel, "reason": f"name does not parse: {e}"})
                    continue
                split = split_index.get(name)
                if split is None:
                    failures.append({"video": rel, "reason": _NOT_IN_SPLITS})
                    continue
                tasks.append(VideoTask(method, comp, name, split, labels.label, labels.source, labels.target))
    return tasks, failures


# ----------------------------------------------------------------------------------------------
# one video (runs in worker processes)

_DETECTOR: LandmarkDetector | None = None


def _init_worker() -> None:
    die_with_parent()
    cv2.setNumThreads(1)  # parallelism comes from the processes


def _detector(settings: Settings) -> LandmarkDetector:
    """This process's detector, loaded on first use (the 68-point model takes seconds to load)."""
    global _DETECTOR
    if _DETECTOR is None or (_DETECTOR.predictor_path, _DETECTOR.detect_side) != (
        settings.predictor, settings.detect_side
    ):
        _DETECTOR = LandmarkDetector(settings.predictor, detect_side=settings.detect_side)
    return _DETECTOR


#: zlib level 1 with the "up" filter: measured 2.3x faster than OpenCV's default adaptive filtering
#: on 728 px face crops (18 vs 41 ms) and smaller files (98 vs 104 KB).
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]


def _write_png(path: Path, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), _PNG_PARAMS)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


def _resize(image: np.ndarray, size: int | None, interpolation: int) -> np.ndarray:
    if size is None or image.shape[0] == size:
        return image
    return cv2.resize(image, (size, size), interpolation=interpolation)


def _load_truth(root: Path, task: VideoTask) -> dict[str, np.ndarray] | None:
    path = ffpp.gt_path(root, task.method, task.compression, task.name)
    if not path.is_file():
        return None
    with np.load(path) as gt:
        return {k: gt[k] for k in ("landmarks", "donor_mask", "trace_mask") if k in gt.files}


def process_video(
    task: VideoTask, root: Path, out: Path, settings: Settings, borrow: dict[int, list[float]] | None = None
) -> dict[str, Any]:
    """Prepare one video: crops, masks and rows; writes and returns its part ``{rows, failures, rects}``.

    ``borrow`` maps frame index -> detector box found in a less compressed version of the same
    video: a frame where the detector finds nothing is fitted in that box instead (compression
    does not move the face), with ``score`` null. ``rects`` in the part are this video's own
    detections, for the next compression level.
    """
    failures: list[dict[str, Any]] = []
    rows: list[Row] = []
    rects: dict[int, list[float]] = {}
    borrow = borrow or {}

    def fail(reason: str, **extra: Any) -> None:
        failures.append({"video": task.rel, "reason": reason, **extra})

    try:
        decoded = decode_frames(root / task.rel, settings.frames_per_video)
    except VideoError as e:
        fail(str(e))
        return _finish(task, out, rows, failures, rects)
    if decoded.error:
        fail(decoded.error)
    truth = _load_truth(root, task)
    if settings.landmarks == "truth" and (truth is None or "landmarks" not in truth):
        fail("--landmarks truth: no ground-truth landmarks for this video")
        return _finish(task, out, rows, failures, rects)
    detector = _detector(settings) if settings.landmarks == "dlib" else None
    masks_ok = truth is not None and task.label == 1 and "donor_mask" in truth and "trace_mask" in truth
    no_face: list[int] = []
    previous: Sequence[float] | None = None
    for index in sorted(decoded.frames):
        frame = decoded.frames[index]
        score: float | None
        if settings.landmarks == "truth":
            if index >= len(truth["landmarks"]):
                no_face.append(index)
                continue
            landmarks, score = truth["landmarks"][index].astype(np.float64), None
        else:
            # hint: the same frame at a less compressed level, else the previous kept frame
            face = detector.detect(frame, hint=borrow.get(index, previous))
            if face is not None:
                previous = face.rect
                rects[index] = [round(v, 2) for v in face.rect]
                landmarks, score = face.landmarks, round(face.score, 4)
            elif index in borrow:
                landmarks, score = detector.fit(frame, tuple(borrow[index])), None
            else:
                no_face.append(index)
                continue
        box = square_box(landmarks, settings.margin)
        side = box[2] - box[0]
        crop = _resize(extract_box(frame, box), settings.crop_size, cv2.INTER_AREA)
        rel_crop = f"crops/{task.method}/{task.compression}/{task.name}/{index:04d}.png"
        _write_png(out / rel_crop, crop)
        rel_mask = None
        if masks_ok and index < len(truth["donor_mask"]) and truth["donor_mask"].shape[1:] == frame.shape[:2]:
            rgb = np.zeros((*truth["donor_mask"].shape[1:], 3), np.uint8)
            rgb[..., 0] = truth["donor_mask"][index] * 255
            rgb[..., 1] = truth["trace_mask"][index] * 255
            rel_mask = f"masks/{task.method}/{task.compression}/{task.name}/{index:04d}.png"
            _write_png(out / rel_mask, _resize(extract_box(rgb, box), settings.crop_size, cv2.INTER_AREA))
        crop_side = crop.shape[0]
        # frame -> crop pixels (pixel-centre convention; identity shift at native resolution)
        s = crop_side / side
        crop_lm = (landmarks - np.array(box[:2], dtype=np.float64) + 0.5) * s - 0.5
        rows.append({
            "id": row_id(task.method, task.compression, task.name, index),
            "path": rel_crop,
            "mask_path": rel_mask,
            "method": task.method,
            "compression": task.compression,
            "video": task.name,
            "frame": index,
            "split": task.split,
            "label": task.label,
            "source": task.source,
            "target": task.target,
            "box": box,
            "landmarks": np.round(crop_lm, 3).tolist(),
            "score": score,
        })
    if masks_ok and truth["donor_mask"].shape[1:] != decoded.frames[min(decoded.frames)].shape[:2]:
        fail("ground-truth masks do not match the frame size; no mask crops written")
    if no_face:
        fail(f"no face detected in {len(no_face)} of {len(decoded.frames)} frames", frames=no_face)
    return _finish(task, out, rows, failures, rects)


def _finish(
    task: VideoTask, out: Path, rows: list[Row], failures: list[dict[str, Any]], rects: dict[int, list[float]]
) -> dict[str, Any]:
    part = {"task": asdict(task), "rows": rows, "failures": failures, "rects": rects}
    atomic_write_json(task.part_path(out), part, indent=None)
    return part


def _run_group(
    group: list[VideoTask], done: dict[VideoTask, dict[str, Any]], root: Path, out: Path, settings: Settings
) -> dict[VideoTask, dict[str, Any]]:
    """The compression levels of one video, least compressed first, each borrowing the boxes of the
    levels before it. ``done`` holds parts already on disk (resuming): their boxes are reused."""
    borrow: dict[int, list[float]] = {}
    parts: dict[VideoTask, dict[str, Any]] = {}
    for task in group:
        part = done.get(task) or process_video(task, root, out, settings, borrow)
        parts[task] = part
        for index, rect in part.get("rects", {}).items():
            borrow.setdefault(int(index), rect)
    return parts


# ----------------------------------------------------------------------------------------------
# the whole run


def _split_index(root: Path, splits: str | Path | None) -> tuple[dict[str, str], str]:
    """Video name -> split, from ``splits`` (a folder), else ROOT/splits, else the shipped official
    FF++ splits (said on stderr); and where they came from."""
    if splits is None and not (root / "splits").exists():
        print(f"fstmatch prepare: {root} has no splits/ folder: using the official FF++ splits shipped with "
              f"fstmatch ({ffpp.OFFICIAL_SPLITS_SOURCE})", file=sys.stderr)
        return ffpp.video_split_index(ffpp.official_splits()), "the official FF++ splits"
    folder = Path(splits) if splits is not None else root / "splits"
    return ffpp.video_split_index(ffpp.read_splits(folder)), str(folder)


def _check_settings(out: Path, settings: Settings) -> None:
    path = out / "prepare.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text("utf-8"))
        except json.JSONDecodeError:
            old = None
        if old is not None:
            old = {**_LATER_SETTINGS, **old}
        if old != asdict(settings):
            raise UserError(
                f"{out} was prepared with other settings ({old}); use a new OUT folder or delete {out}"
            )
    else:
        atomic_write_json(path, asdict(settings))


def _load_part(task: VideoTask, out: Path) -> dict[str, Any] | None:
    path = task.part_path(out)
    if not path.is_file():
        return None
    try:
        part = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, OSError):
        return None
    return part if part.get("task") == asdict(task) else None


def prepare(
    root: str | Path,
    out: str | Path,
    *,
    frames_per_video: int = 32,
    methods: Sequence[str] | None = None,
    compressions: Sequence[str] | None = None,
    splits: str | Path | None = None,
    workers: int = 1,
    predictor: str | Path | None = None,
    landmarks: Literal["dlib", "truth"] = "dlib",
    strict: bool = False,
    margin: float | None = None,
    crop_size: int | None = None,
    convention: str = "fstmatch",
    detect_side: int = 360,
    progress: bool = True,
) -> Path:
    """Prepare every video of ROOT (FF++ layout) into ``out``; returns ``out`` (see module docstring).

    Args:
        frames_per_video: K frames evenly spaced per video. methods: manipulations (``None``:
            those present; reals are always included). compressions: ``None``: those present.
        splits: folder of train/val/test.json (default ROOT/splits; when ROOT has none, the official
            FF++ splits shipped with fstmatch, :func:`fstmatch.ffpp.official_splits`). Videos the
            splits do not cover are skipped with a warning giving their count. workers: processes.
        predictor: another dlib shape predictor (first 68 points used). landmarks: ``"dlib"``
            (detector + predictor) or ``"truth"`` (FST-Synth ground truth, score null).
        strict: raise :class:`UserError` when any problem was recorded (after writing everything).
        margin, crop_size, detect_side: see :class:`Settings`; ``margin=None``: the convention's
            (:data:`DEFAULT_MARGIN`). convention: the alignment convention the crops are for.
    Raises:
        UserError: ROOT not an FF++ tree, bad arguments, nothing prepared, or ``strict`` and problems.
    """
    root, out = Path(root), Path(out)
    if not root.is_dir() or not ((root / "original_sequences").is_dir() or (root / "manipulated_sequences").is_dir()):
        raise UserError(f"{root} is not an FF++ tree: {LAYOUT_HELP}")
    if convention not in DEFAULT_MARGIN:
        raise UserError(f"unknown alignment convention {convention!r}; choose one of: {', '.join(DEFAULT_MARGIN)}")
    margin = DEFAULT_MARGIN[convention] if margin is None else margin
    if landmarks not in ("dlib", "truth"):
        raise UserError(f"landmarks must be 'dlib' or 'truth', not {landmarks!r}")
    if frames_per_video < 1 or workers < 1:
        raise UserError("frames_per_video and workers must be >= 1")
    if margin < 0 or (crop_size is not None and crop_size < 8) or detect_side < 40:
        raise UserError("margin must be >= 0, crop_size >= 8 px and detect_side >= 40 px")
    if predictor is not None and not Path(predictor).is_file():
        raise UserError(f"landmark predictor not found: {predictor}")
    for m in methods or ():
        ffpp.check_method(m)
    for c in compressions or ():
        ffpp.check_compression(c)
    split_index, split_source = _split_index(root, splits)
    settings = Settings(
        frames_per_video=frames_per_video,
        landmarks=landmarks,
        predictor=str(Path(predictor).resolve()) if predictor is not None else None,
        margin=float(margin),
        convention=convention,
        crop_size=crop_size,
        detect_side=detect_side,
    )
    tasks, failures = scan(root, methods, compressions, split_index)
    uncovered = sum(f["reason"] == _NOT_IN_SPLITS for f in failures)
    if uncovered:
        print(f"fstmatch prepare: warning: {uncovered} of {len(tasks) + uncovered} videos are not in the "
              f"split files ({split_source}); they are skipped and listed in failures.jsonl", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    done = {task: part for task in tasks if (part := _load_part(task, out)) is not None}
    groups: dict[tuple[str, str], list[VideoTask]] = {}
    for task in sorted(tasks, key=lambda t: ffpp.COMPRESSIONS.index(t.compression)):
        groups.setdefault((task.method, task.name), []).append(task)
    todo = [g for g in groups.values() if any(t not in done for t in g)]
    parts = dict(done)
    bar = tqdm(total=len(tasks), initial=len(done), desc="prepare", unit="video", disable=not progress,
               file=sys.stderr)

    def collect(new: dict[VideoTask, dict[str, Any]]) -> None:
        bar.update(sum(t not in parts for t in new))
        parts.update(new)

    try:
        if workers == 1 or len(todo) <= 1:
            _init_worker()
            for group in todo:
                collect(_run_group(group, done, root, out, settings))
        else:
            with ProcessPoolExecutor(
                max_workers=min(workers, len(todo)), mp_context=get_context("spawn"), initializer=_init_worker,
            ) as pool:
                futures = [
                    pool.submit(_run_group, g, {t: done[t] for t in g if t in done}, root, out, settings)
                    for g in todo
                ]
                try:
                    for future in as_completed(futures):
                        collect(future.result())
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()
    rows = sorted((r for p in parts.values() for r in p["rows"]), key=sort_key)
    failures += [f for task in tasks if task in parts for f in parts[task]["failures"]]
    failures.sort(key=lambda f: (f["video"], f["reason"]))
    write_jsonl(out / "manifest.jsonl", rows)
    write_jsonl(out / "failures.jsonl", failures)
    summary = _summary(rows, failures, len(tasks), out)
    if progress:
        print(summary, file=sys.stderr)
    if not rows:
        raise UserError(f"nothing could be prepared from {root}: {summary}")
    if strict and failures:
        raise UserError(f"--strict: {len(failures)} problem(s) recorded in {out / 'failures.jsonl'}")
    return out


def _summary(rows: list[Row], failures: list[dict[str, Any]], n_videos: int, out: Path) -> str:
    videos = len({(r["method"], r["compression"], r["video"]) for r in rows})
    text = f"prepared {len(rows)} frames of {videos}/{n_videos} videos into {out / 'manifest.jsonl'}"
    if failures:
        kinds = Counter(f["reason"].split(":")[0] if "no face" not in f["reason"] else "no face" for f in failures)
        text += f"; {len(failures)} problem(s) in {out / 'failures.jsonl'}: " + ", ".join(
            f"{n} {k}" for k, n in kinds.most_common()
        )
    return text
