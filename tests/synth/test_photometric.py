"""Photometric rendering (shading, texture, camera, poses) and the frequency content of each
method's trace, including how H.264 treats it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from fstmatch import ffpp
from fstmatch.config import load_config
from fstmatch.synth import SynthConfig, VideoJob, encode_video, read_video, render_video
from fstmatch.synth.face import Pose
from fstmatch.synth.generate import identity, track
from fstmatch.synth.manipulate import COARSE, FINE, SEAM
from fstmatch.synth.render import camera, render_face
from fstmatch.synth.shading import rotation

from ._reference import ideal_video


@pytest.fixture(scope="module")
def cfg() -> SynthConfig:
    return load_config(SynthConfig, kind="synth", preset="micro")


def _highpass(x: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    x = x.astype(np.float32)
    return x - cv2.GaussianBlur(x, (0, 0), sigma)


def test_rotation_matches_the_landmark_projection() -> None:
    from fstmatch.synth.face import project

    pose = Pose(10.0, 20.0, 50.0, roll=0.1, yaw=-0.4, pitch=0.2)
    pts = np.random.default_rng(0).normal(size=(7, 3))
    mine = pts @ rotation(pose).T
    assert np.allclose(np.array([pose.cx, pose.cy]) + pose.scale * mine[:, :2], project(pts, pose))


def test_shading_follows_the_light() -> None:
    """The key light from the left brightens the face's left half, from the right its right half."""
    person = identity(0, 0)
    halves = []
    for side in (-0.6, 0.6):
        pose = Pose(64.0, 55.0, 60.0, light_dir=side)
        img, lm = render_face(person, person, pose, (128, 128))
        cx = int(lm[27:31, 0].mean())
        band = slice(int(lm[36:48, 1].mean()) + 3, int(lm[48:68, 1].mean()))  # cheeks, below the eyes
        halves.append((img[band, cx - 25:cx - 5].mean(), img[band, cx + 5:cx + 25].mean()))
    (left_l, right_l), (left_r, right_r) = halves
    assert left_l - right_l > 0.02 and right_r - left_r > 0.02, halves


def test_skin_and_hair_carry_fine_detail() -> None:
    """Before the camera (no noise), skin and hair have pixel-scale texture a flat fill lacks."""
    person = identity(0, 3)
    img, lm = render_face(person, person, Pose(96.0, 70.0, 80.0), (192, 192))
    grey = img.mean(axis=2) * 255
    hp = np.abs(_highpass(grey, 1.0))
    cheek = hp[int(lm[29, 1]) - 4:int(lm[29, 1]) + 4, int(lm[2, 0]) + 8:int(lm[31, 0]) - 4]
    assert cheek.size and cheek.mean() > 0.4, cheek.mean()
    top = int(lm[19, 1] - 0.45 * 80)  # inside the hair cap, above the brows
    hair = hp[top - 3:top + 3, int(lm[19, 0]):int(lm[24, 0])]
    assert hair.mean() > 1.0, hair.mean()


def test_camera_noise_grows_with_the_signal() -> None:
    rng = np.random.default_rng(0)
    dark = camera(np.full((64, 64, 3), 0.1, np.float32), rng, 0.0, 2.0).astype(np.float32)
    bright = camera(np.full((64, 64, 3), 0.9, np.float32), rng, 0.0, 2.0).astype(np.float32)
    assert bright.std() > 1.5 * dark.std() > 0


def test_poses_cover_talking_head_ranges(cfg: SynthConfig) -> None:
    """Yaw within +-30 degrees (reaching past 20 over a few people), pitch +-15, roll +-10."""
    long = replace(cfg, frames=60)
    poses = [p for i in range(12) for p in track(long, 0, i)]
    yaw, pitch, roll = (np.degrees([getattr(p, k) for p in poses]) for k in ("yaw", "pitch", "roll"))
    assert np.abs(yaw).max() <= 30.5 and np.abs(pitch).max() <= 15.5 and np.abs(roll).max() <= 10.5
    assert np.abs(yaw).max() > 20 and np.abs(pitch).max() > 8 and np.abs(roll).max() > 5


def test_trace_kind_splits_the_trace(cfg: SynthConfig) -> None:
    for method in ffpp.METHODS:
        out = render_video(cfg, 0, VideoJob(method, 0, 1))
        kind, mask = out["trace_kind"], out["trace_mask"]
        assert kind.shape == mask.shape and kind.max() <= FINE | COARSE | SEAM
        assert mask[(kind & SEAM) > 0].all(), method  # the seam is always a trace
        marked = (kind & (FINE | COARSE)) > 0
        assert (mask[marked] == 1).mean() > 0.99, method
        assert marked.any(), method


def _coarse_and_fine(cfg: SynthConfig, method: str) -> tuple[float, float, float]:
    """Inside the (eroded) donor mask: mean |low-passed fake - ideal|, and the high-frequency
    energy of the fake and of the ideal."""
    fake = render_video(cfg, 0, VideoJob(method, 0, 1))
    ideal = ideal_video(cfg, 0, VideoJob(method, 0, 1))
    inner = [cv2.erode(m, np.ones((5, 5), np.uint8)) > 0 for m in fake["donor_mask"]]
    coarse = np.mean([np.abs(cv2.GaussianBlur(f.astype(np.float32) - i, (0, 0), 3.0))[m].mean()
                      for f, i, m in zip(fake["frames"], ideal, inner)])
    e_fake = np.mean([(_highpass(f, 0.8)[m] ** 2).mean() for f, m in zip(fake["frames"], inner)])
    e_ideal = np.mean([(_highpass(i, 0.8)[m] ** 2).mean() for i, m in zip(ideal, inner)])
    return float(coarse), float(e_fake), float(e_ideal)


def test_faceshifter_is_smooth_but_faithful(cfg: SynthConfig) -> None:
    """FaceShifter's face lacks A's sensor noise and fine detail (much less high-frequency energy
    than the ideal) but is the most faithful swap at coarse scales."""
    coarse, e_fake, e_ideal = _coarse_and_fine(cfg, "FaceShifter")
    assert e_fake < 0.8 * e_ideal, (e_fake, e_ideal)
    for other in ("Deepfakes", "FaceSwap"):
        assert coarse < _coarse_and_fine(cfg, other)[0], other


def _trace(fake: np.ndarray, ideal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """High-passed ``fake - ideal`` at the pixels of ``mask`` (T, H, W), flattened."""
    d = np.stack([_highpass(f.astype(np.float32) - i.astype(np.float32)) for f, i in zip(fake, ideal)])
    return d[mask > 0].ravel()


@pytest.mark.parametrize("method", ffpp.METHODS)
def test_fine_trace_is_fragile_to_compression(tmp_path: Path, method: str) -> None:
    """The high-frequency part of the trace (fake - ideal, above a 2 px Gaussian as the fine part
    of ``trace_kind``, inside the trace mask) loses much more of its energy from raw to c40 than
    from raw to c23 (FF++'s c40 difficulty).

    Fake and ideal are encoded alike; what survives of the raw trace at a compression is the part
    of the decoded difference along it (the regression coefficient on the raw trace, squared:
    the coding noise of two different videos is not trace)."""
    cfg = load_config(SynthConfig, kind="synth", preset="tiny", overrides=["frames=6"])
    job = VideoJob(method, 0, 1)
    out = render_video(cfg, 0, job)
    ideal = ideal_video(cfg, 0, job)
    traces = {}
    for comp in ffpp.COMPRESSIONS:
        decoded = []
        for name, frames in (("fake", out["frames"]), ("ideal", ideal)):
            path = tmp_path / f"{name}_{comp}.mp4"
            encode_video(path, frames, comp, cfg.fps, "ultrafast" if comp == "raw" else cfg.x264_preset)
            decoded.append(read_video(path))
        traces[comp] = _trace(*decoded, out["trace_mask"])
    raw = traces["raw"]
    kept = {c: float(traces[c] @ raw / (raw @ raw)) ** 2 for c in ("c23", "c40")}
    lost_c23, lost_c40 = 1 - kept["c23"], 1 - kept["c40"]
    assert lost_c40 > 0.6 and lost_c40 > lost_c23 + 0.15, (method, kept)
