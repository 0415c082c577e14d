"""Per-video motion: head pose, blinks, mouth track and lighting drift, smooth over frames."""

from __future__ import annotations

import numpy as np

from fstmatch.synth.face import Identity, Pose


def _smooth(rng: np.random.Generator, t: np.ndarray, cycles: tuple[float, float]) -> np.ndarray:
    """A smooth random signal in about [-1, 1]: two sinusoids of random phase and frequency
    (``cycles`` = min/max cycles per 25 frames)."""
    out = np.zeros_like(t)
    for _ in range(2):
        f = rng.uniform(*cycles) / 25.0
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out / 2


def make_track(identity: Identity, rng: np.random.Generator, frames: int, size: tuple[int, int],
               face_size: float, motion: float = 1.0) -> list[Pose]:
    """Poses of ``frames`` frames of ``identity``'s video in a frame of ``size`` = (H, W) pixels."""
    h, w = size
    t = np.arange(frames, dtype=np.float64)
    m = motion
    scale = face_size * h * identity.size * (1 + 0.05 * m * _smooth(rng, t, (0.2, 0.6)))
    cx = w / 2 + w * 0.06 * m * _smooth(rng, t, (0.3, 1.0))
    cy = 0.40 * h + h * 0.03 * m * _smooth(rng, t, (0.3, 1.0))
    # Talking-head ranges: yaw within about +-30 degrees, pitch +-15, roll +-10 (a per-video
    # offset plus smooth motion, clipped).
    roll = m * np.clip(rng.uniform(-0.06, 0.06) + 0.11 * _smooth(rng, t, (0.3, 1.0)), -0.17, 0.17)
    yaw = m * np.clip(rng.uniform(-0.22, 0.22) + 0.32 * _smooth(rng, t, (0.3, 1.0)), -0.52, 0.52)
    pitch = m * np.clip(rng.uniform(-0.08, 0.08) + 0.17 * _smooth(rng, t, (0.3, 1.0)), -0.26, 0.26)
    # Talking: the mouth opens and closes a few times a second, with pauses.
    mouth = np.clip(0.5 + 0.7 * _smooth(rng, t, (2.0, 4.0)), 0, 1) * np.clip(0.6 + _smooth(rng, t, (0.3, 0.8)), 0, 1)
    # Blinks last three frames (half, closed, half); at least one per video of 6+ frames.
    blink = np.zeros(frames)
    starts = [k for k in range(frames) if rng.random() < 0.06]
    if frames >= 6 and not starts:
        starts = [int(rng.integers(1, frames - 2))]
    for k in starts:
        for d, v in enumerate((0.5, 1.0, 0.5)):
            if k + d < frames:
                blink[k + d] = max(blink[k + d], v)
    light = 1 + 0.08 * _smooth(rng, t, (0.1, 0.3)) + rng.uniform(-0.08, 0.05)
    light_dir = rng.uniform(-0.6, 0.6) + 0.08 * _smooth(rng, t, (0.1, 0.3))  # key light, left .. right
    return [
        Pose(float(cx[i]), float(cy[i]), float(scale[i]), float(roll[i]), float(yaw[i]), float(pitch[i]),
             float(blink[i]), float(mouth[i]), float(light[i]), float(light_dir[i]))
        for i in range(frames)
    ]
