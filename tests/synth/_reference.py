"""Clean references of the synthetic manipulations, for the tests that measure traces against them
(moved out of fstmatch.synth: only the tests use them)."""

from __future__ import annotations

import numpy as np

from fstmatch import ffpp
from fstmatch.synth.config import SynthConfig
from fstmatch.synth.generate import VideoJob, scene, track
from fstmatch.synth.manipulate import Scene, _expression_pose, ideal_frame
from fstmatch.synth.render import camera, render_face


def donor_reference(s: Scene, method: str) -> np.ndarray:
    """What the donor contributes, rendered cleanly in A's geometry through the camera lens (no
    noise), uint8: B's inner face with B's skin for swaps, A's face with B's expression for
    reenactment."""
    if method in ("Face2Face", "NeuralTextures"):
        pose = _expression_pose(s, eyes=method == "Face2Face")
        img, _ = render_face(s.a, s.a, pose, s.size, supersample=s.supersample)
    else:
        img, _ = render_face(s.a, s.b, s.pose_a, s.size, skin=s.b.skin, supersample=s.supersample)
    return camera(img, np.random.default_rng(0), s.blur, 0.0)


def ideal_video(cfg: SynthConfig, seed: int, job: VideoJob) -> np.ndarray:
    """uint8 (T, H, W, 3): fake ``job`` done perfectly (the reference its ``trace_mask`` is measured
    against: the same scene rendered in one go with A's skin tone and A's camera noise)."""
    if job.method == ffpp.REAL:
        raise ValueError("a real video has no ideal manipulation")
    poses_a, poses_b = track(cfg, seed, job.a), track(cfg, seed, job.b)
    return np.stack([ideal_frame(scene(cfg, seed, job, t, poses_a[t], poses_b[t]), job.method)
                     for t in range(cfg.frames)])
