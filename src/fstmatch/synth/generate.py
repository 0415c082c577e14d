"""Generating a whole FST-Synth dataset in the FF++ layout: plan, render, encode, resume.

Every random choice is drawn from a generator seeded by ``(seed, what, ids...)``, never from shared
state, so a video's frames depend only on the preset, the seed and the video's name — not on the
order of work or the number of workers.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import multiprocessing
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fstmatch import ffpp
from fstmatch.config import load_config, to_dict
from fstmatch.errors import UserError
from fstmatch.synth.config import SynthConfig
from fstmatch.synth.face import Identity, Pose, sample_identity
from fstmatch.synth.manipulate import MANIPULATIONS, Scene
from fstmatch.synth.render import camera, render_face
from fstmatch.synth.track import make_track
from fstmatch.utils.io import atomic_path, atomic_write_bytes, atomic_write_json
from fstmatch.utils.procs import die_with_parent

MARKER = "synth.json"  # OUT/synth.json: preset, seed, resolved config, completion flag
_OWNED = ("original_sequences", "manipulated_sequences", "splits", MARKER, "contact_sheet.png")
_METHOD_INDEX = {m: i for i, m in enumerate(ffpp.METHODS)}


@dataclass(frozen=True)
class VideoJob:
    """One video: ``method`` is "real" or an FF++ method; ``a`` the source id, ``b`` the donor id."""

    method: str
    a: int
    b: int

    @property
    def name(self) -> str:
        return f"{self.a:03d}" if self.method == ffpp.REAL else ffpp.fake_name(f"{self.a:03d}", f"{self.b:03d}")


def make_splits(cfg: SynthConfig, seed: int) -> dict[str, list[tuple[str, str]]]:
    """Shuffle the identities into pairs and deal the pairs into train/val/test (``cfg.pairs``)."""
    ids = np.random.default_rng([seed, 0]).permutation(cfg.num_identities)
    pairs = [(f"{ids[2 * k]:03d}", f"{ids[2 * k + 1]:03d}") for k in range(cfg.num_identities // 2)]
    n_train, n_val, _ = cfg.pairs
    return {"train": pairs[:n_train], "val": pairs[n_train:n_train + n_val], "test": pairs[n_train + n_val:]}


def plan_videos(cfg: SynthConfig, splits: dict[str, list[tuple[str, str]]]) -> list[VideoJob]:
    """Every video of the dataset: one real per identity, then fakes A_B and B_A of every pair,
    all methods of one fake name in a row (they share A's real frames)."""
    jobs = [VideoJob(ffpp.REAL, i, i) for i in range(cfg.num_identities)]
    pairs = sorted((int(a), int(b)) for split in ffpp.SPLITS for a, b in splits[split])
    for a, b in pairs:
        for src, donor in ((a, b), (b, a)):
            jobs += [VideoJob(method, src, donor) for method in cfg.methods]
    return jobs


@lru_cache(maxsize=4096)
def identity(seed: int, identity_id: int) -> Identity:
    """The traits of identity ``identity_id`` under ``seed``."""
    return sample_identity(identity_id, np.random.default_rng([seed, 1, identity_id]))


def track(cfg: SynthConfig, seed: int, identity_id: int) -> list[Pose]:
    """Poses and expressions of identity ``identity_id``'s own video."""
    return make_track(identity(seed, identity_id), np.random.default_rng([seed, 2, identity_id]), cfg.frames,
                      (cfg.height, cfg.width), cfg.face_size, cfg.motion)


def real_frame(cfg: SynthConfig, seed: int, identity_id: int, t: int, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t`` of real video ``identity_id``: uint8 (H, W, 3) and landmarks (68, 2)."""
    person = identity(seed, identity_id)
    img, lm = render_face(person, person, pose, (cfg.height, cfg.width), supersample=cfg.supersample)
    return camera(img, np.random.default_rng([seed, 3, identity_id, t]), cfg.blur, cfg.noise), lm


def scene(cfg: SynthConfig, seed: int, job: VideoJob, t: int, pose_a: Pose, pose_b: Pose) -> Scene:
    """What manipulation ``job.method`` of frame ``t`` gets to see."""
    return Scene(
        a=identity(seed, job.a), b=identity(seed, job.b), pose_a=pose_a, pose_b=pose_b,
        size=(cfg.height, cfg.width), supersample=cfg.supersample, blur=cfg.blur, noise=cfg.noise,
        real_noise_seed=[seed, 3, job.a, t], fake_noise_seed=[seed, 4, _METHOD_INDEX[job.method], job.a, job.b, t],
        bottleneck=cfg.deepfakes_bottleneck, trace_threshold=cfg.trace_threshold,
        colour_threshold=cfg.colour_threshold,
    )


_REAL_CACHE: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}


def real_video(cfg: SynthConfig, seed: int, identity_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 (T, H, W, 3) and landmarks float32 (T, 68, 2) of real video ``identity_id``
    (the last one is cached: the plan puts all fakes of one source A in a row, and an ffpp-sized
    video is ~280 MB)."""
    key = (repr(to_dict(cfg)), seed, identity_id)
    if key not in _REAL_CACHE:
        poses = track(cfg, seed, identity_id)
        frames, marks = zip(*(real_frame(cfg, seed, identity_id, t, poses[t]) for t in range(cfg.frames)))
        _REAL_CACHE.clear()
        video, landmarks = np.stack(frames), np.stack(marks).astype(np.float32)
        video.flags.writeable = landmarks.flags.writeable = False  # shared by every fake of A
        _REAL_CACHE[key] = (video, landmarks)
    return _REAL_CACHE[key]


def render_video(cfg: SynthConfig, seed: int, job: VideoJob) -> dict[str, np.ndarray]:
    """Render every frame of ``job``: ``frames`` uint8 (T, H, W, 3), ``landmarks`` float32 (T, 68, 2)
    and, for fakes, ``donor_mask``, ``trace_mask`` and ``trace_kind`` uint8 (T, H, W)."""
    reals, real_marks = real_video(cfg, seed, job.a)
    if job.method == ffpp.REAL:
        return {"frames": reals.copy(), "landmarks": real_marks.copy()}
    poses_a, poses_b = track(cfg, seed, job.a), track(cfg, seed, job.b)
    fakes = [MANIPULATIONS[job.method](reals[t], scene(cfg, seed, job, t, poses_a[t], poses_b[t]))
             for t in range(cfg.frames)]
    return {
        "frames": np.stack([f.image for f in fakes]),
        "landmarks": np.stack([f.landmarks for f in fakes]).astype(np.float32),
        "donor_mask": np.stack([f.donor_mask for f in fakes]).astype(np.uint8),
        "trace_mask": np.stack([f.trace_mask for f in fakes]).astype(np.uint8),
        "trace_kind": np.stack([f.trace_kind for f in fakes]).astype(np.uint8),
    }


def _outputs(root: Path, cfg: SynthConfig, job: VideoJob) -> list[Path]:
    paths = []
    for comp in cfg.compressions:
        paths += [ffpp.video_path(root, job.method, comp, job.name), ffpp.gt_path(root, job.method, comp, job.name)]
    return paths


def _write_video(root: Path, cfg: SynthConfig, seed: int, job: VideoJob) -> bool:
    """Render and write every compression of ``job`` (ground truth first, video last, each atomic).
    Returns False when the video was already complete (resume)."""
    if all(p.is_file() for p in _outputs(root, cfg, job)):
        return False
    from fstmatch.synth.codec import encode_video

    data = render_video(cfg, seed, job)
    labels = ffpp.parse_video_name(job.name, job.method)
    gt = {k: v for k, v in data.items() if k != "frames"}
    gt.update(method=np.array(job.method), source=np.int64(labels.source), target=np.int64(labels.target),
              label=np.int64(labels.label), fps=np.int64(cfg.fps))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **gt)  # compressed once, the same bytes for every compression
    for comp in cfg.compressions:
        atomic_write_bytes(ffpp.gt_path(root, job.method, comp, job.name), buffer.getvalue())
        with atomic_path(ffpp.video_path(root, job.method, comp, job.name)) as tmp:
            preset = cfg.raw_x264_preset if comp == "raw" else cfg.x264_preset
            encode_video(tmp, data["frames"], comp, cfg.fps, preset)
    return True


def _worker_init() -> None:
    import cv2

    die_with_parent()
    cv2.setNumThreads(1)  # the pool parallelises across videos


def _work(args: tuple[str, dict, int, list[VideoJob]]) -> int:
    """Write a group of videos sharing one source A (in one process, so A's frames are cached)."""
    root, cfg_dict, seed, group = args
    from fstmatch.config import from_dict

    cfg = from_dict(SynthConfig, cfg_dict)
    return sum(_write_video(Path(root), cfg, seed, job) for job in group)


def _prepare_out(out: Path, record: dict, overwrite: bool) -> None:
    """Refuse a foreign non-empty ``out``; resume a run of the same preset/seed/config; wipe our
    own files with ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    marker = out / MARKER
    if overwrite:
        for name in _OWNED:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        return
    if marker.is_file():
        import json

        try:
            previous = json.loads(marker.read_text("utf-8"))
        except json.JSONDecodeError:
            previous = {}
        keys = ("seed", "config", "encoder")
        same = {k: previous.get(k) for k in keys} == {k: json.loads(json.dumps(record[k])) for k in keys}
        if same:  # resume: finished videos are skipped, leftovers of a killed run removed
            for name in _OWNED[:3]:
                for stale in (out / name).rglob(".*.tmp-*"):
                    stale.unlink()
            return
        raise UserError(
            f"{out} holds an FST-Synth set made with other settings (preset {previous.get('preset')!r}, "
            f"seed {previous.get('seed')}"
            + (", another video encoder" if previous.get("encoder") != json.loads(json.dumps(record["encoder"])) else "")
            + "); pass --overwrite to replace it, or choose another folder"
        )
    raise UserError(f"output folder {out} is not empty; pass --overwrite to write into it, or choose an empty folder")


def generate(
    out: str | Path,
    preset: str = "tiny",
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    overrides: Sequence[str] = (),
    *,
    config: SynthConfig | None = None,
    progress: bool = False,
) -> Path:
    """Generate an FST-Synth dataset under ``out`` and return ``out``.

    Args:
        out: output folder (created). A non-empty folder is refused unless it holds an unfinished
            run with the same settings (resumed) or ``overwrite`` is set (our files are replaced).
        preset: ``micro``, ``tiny``, ``laptop``, ``small`` or ``ffpp`` (``fstmatch/presets/synth``).
        seed: random seed; the same preset and seed give byte-identical files at every compression.
        workers: processes rendering videos in parallel (results do not depend on it).
        overrides: ``key=value`` config overrides.
        config: a ready config instead of ``preset`` + ``overrides``.
        progress: show a progress bar over videos (stderr).
    """
    if workers < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    cfg = config if config is not None else load_config(SynthConfig, kind="synth", preset=preset, overrides=overrides)
    out = Path(out)
    from fstmatch.synth.codec import ENCODER

    record = {"preset": preset if config is None else None, "seed": int(seed), "config": to_dict(cfg),
              "encoder": ENCODER, "complete": False}
    _prepare_out(out, record, overwrite)
    splits = make_splits(cfg, seed)
    jobs = plan_videos(cfg, splits)
    check_disk(out, cfg, len(jobs))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / MARKER, record)
    ffpp.write_splits(out / "splits", splits)
    groups: dict[tuple[int, int], list[VideoJob]] = {}
    for job in jobs:  # a real alone; all methods of one fake name together
        groups.setdefault((job.a, job.b if job.method != ffpp.REAL else -1), []).append(job)
    tasks = [(str(out), to_dict(cfg), int(seed), group) for group in groups.values()]
    done = _run(tasks, workers, progress)
    from fstmatch.synth.contact import write_contact_sheet

    write_contact_sheet(out, cfg, splits)
    atomic_write_json(out / MARKER, {**record, "complete": True, "videos": len(jobs), "rendered": done})
    return out


#: Bytes on disk per video pixel (frames x height x width), all compressions and ground truth
#: together: 1.78 measured on the laptop preset (403 MB for 384 videos of 12 frames of 256x192).
BYTES_PER_VIDEO_PIXEL = 1.8


def check_disk(out: Path, cfg: SynthConfig, n_videos: int, margin: float = 1.5) -> None:
    """Refuse to start when the disk under ``out`` has less free space than the set needs (with a
    ``margin``), instead of failing half-way with a full disk."""
    need = margin * BYTES_PER_VIDEO_PIXEL * n_videos * cfg.frames * cfg.height * cfg.width \
        * len(cfg.compressions) / 3
    probe = out
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise UserError(f"not enough free disk for FST-Synth at {out}: it needs about {need / 1e9:.2f} GB "
                        f"({n_videos} videos of {cfg.frames} frames of {cfg.width}x{cfg.height}), "
                        f"{free / 1e9:.2f} GB are free; free some space or choose another --out")


def _run(tasks: list, workers: int, progress: bool) -> int:
    """Run the groups of videos (in this process or a spawn pool); returns how many were rendered."""
    bar = tqdm(total=sum(len(t[-1]) for t in tasks), desc="synth videos", unit="video", disable=not progress)
    rendered = 0
    try:
        if workers == 1:
            _worker_init()
            for task in tasks:
                rendered += _work(task)
                bar.update(len(task[-1]))
        else:
            ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
                for task, result in zip(tasks, pool.map(_work, tasks)):
                    rendered += result
                    bar.update(len(task[-1]))
    finally:
        bar.close()
    return rendered


def iter_videos(root: str | Path, comp: str = "raw") -> Iterable[tuple[str, str, Path]]:
    """``(method, name, path)`` of every video of a generated set at ``comp``, reals first."""
    root = Path(root)
    for method in (ffpp.REAL, *ffpp.METHODS):
        folder = ffpp.video_dir(root, method, comp)
        for path in sorted(folder.glob("*.mp4")) if folder.is_dir() else []:
            if not path.name.startswith("."):  # pathlib's glob matches hidden temporary files
                yield method, path.stem, path
