"""Training-time augmentation (docs/method.md §2): alignment jitter plus the reference's photometric list.

:func:`build_augment` turns an :class:`AugmentConfig` into a :class:`FaceAugment` (or ``None`` when
disabled) that :class:`fstmatch.data.FaceDataset` applies in three steps:

1. *before alignment*: half-size resize of the face crop (lower source resolution);
2. *alignment jitter*, folded into the alignment warp (one resampling): the alignment scale is drawn
   from N(scale_mean, scale_std) instead of the dataset's fixed ``scale``, then a rotation of
   ``rotate * U(-1,1)^3`` degrees about the canvas centre, a translation of U(-t, t) px per axis with
   ``t = translate * canvas / 224``, a horizontal flip and an optional small perspective stretch;
   ground-truth masks get the same warp;
3. *photometric*, on the aligned uint8 image only: albumentations where it has the transform (HSV,
   gamma, motion / Gaussian blur, Gaussian noise, down-up resize, JPEG) and small numpy functions
   for the rest (colour-tone blend, min-max normalisation, low-frequency noise). Its parameters are
   the reference's, in pixels of the reference's 224-px face (a 3-9 px motion blur, a 3x3 Gaussian,
   JPEG's 8x8 blocks, per-pixel noise), so a face on a smaller canvas is degraded at 224 px and
   resized back (``reference_canvas``): applied to a 64-px face directly, the same pixels are 3.5x
   larger relative to the face, and they erased FST-Synth's traces (docs/train.md, "Augmentation
   and small canvases").

Randomness: each item draws from ``numpy.random.default_rng([seed, torch.initial_seed(), index,
call])`` so DataLoader workers (whose torch seed differs per worker and epoch) and repeated epochs
get different draws, and a run with the same seeds, sampler and worker count repeats exactly.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

_INTERPOLATIONS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA)


@dataclass
class AugmentConfig:
    """Augmentation switches and probabilities (reference values of docs/method.md §2 by default).

    Probabilities are per image. ``enabled=False`` turns everything off (test-time alignment).
    """

    enabled: bool = False
    # --- alignment jitter (geometric; masks follow) ---
    scale_mean: float = 0.9  # alignment scale ~ N(scale_mean, scale_std), clipped to [0.5, 1.5]
    scale_std: float = 0.1
    translate: float = 25.0  # max shift per axis, px at canvas 224 (scaled with the canvas)
    rotate: float = 30.0  # max rotation, degrees; drawn as rotate * U(-1, 1)^3
    flip: float = 0.5  # horizontal flip probability
    perspective: float = 0.0  # probability of a small perspective stretch (optional in the reference)
    perspective_strength: float = 0.05  # max corner displacement, fraction of the canvas
    # --- before alignment ---
    half_size: float = 0.3  # halve the crop's resolution before aligning
    # --- photometric (image only) ---
    tone_blend: float = 0.3  # blend with a random flat colour, weight U(0.05, 0.25)
    hsv: float = 0.25  # saturation +-30, value +-20 (hue unchanged)
    gamma: float = 1.0
    gamma_range: tuple[float, float] = (0.6, 1.4)
    minmax: float = 0.5  # stretch the image's min..max to 0..255
    motion_blur: float = 0.3  # kernel length 3..9 px
    gaussian_blur: float = 0.3  # 3x3 kernel
    down_up: float = 0.25  # resize to 40..90 %, back up, random interpolations
    gaussian_noise: float = 0.3  # std 1..5 % of the range
    lowfreq_noise: float = 0.5  # smooth additive noise field (1/8 resolution, std 2..8 levels)
    jpeg: float = 0.3
    jpeg_quality: tuple[int, int] = (15, 80)
    #: the face size (px) the photometric parameters are defined at (the reference's input); a canvas
    #: S at least half as small is degraded at k·S px, k = round(reference_canvas / S), and reduced
    #: back by k x k means, so the degradation is about the same relative to the face. 0: at the canvas.
    reference_canvas: int = 224

    def __post_init__(self) -> None:
        for name in ("flip", "perspective", "half_size", "tone_blend", "hsv", "gamma", "minmax", "motion_blur",
                     "gaussian_blur", "down_up", "gaussian_noise", "lowfreq_noise", "jpeg"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augment.{name} is a probability, got {p}")
        if self.reference_canvas < 0:
            raise ValueError("augment.reference_canvas must be >= 0 (0: degrade at the canvas)")
        if self.scale_mean <= 0 or self.scale_std < 0:
            raise ValueError("augment.scale_mean must be > 0 and scale_std >= 0")


def _tone_blend(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    colour = rng.uniform(0, 255, size=3)
    w = rng.uniform(0.05, 0.25)
    return np.clip(img * (1 - w) + colour * w, 0, 255).astype(np.uint8)


def _minmax(img: np.ndarray) -> np.ndarray:
    lo, hi = int(img.min()), int(img.max())
    if hi <= lo:
        return img
    return ((img.astype(np.float32) - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)


def _lowfreq_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    field = rng.normal(0, rng.uniform(2, 8), size=(max(2, h // 8), max(2, w // 8))).astype(np.float32)
    field = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img + field[..., None] + 0.5, 0, 255).astype(np.uint8)


class FaceAugment:
    """Callable pieces of the augmentation for one dataset (see the module docstring)."""

    def __init__(self, cfg: AugmentConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.seed = int(seed)
        self._calls = 0
        os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network
        import albumentations as A  # 3 s of imports: only when augmenting

        c = cfg
        self._colour = A.Compose(
            [
                A.HueSaturationValue(hue_shift_limit=0, sat_shift_limit=30, val_shift_limit=20, p=c.hsv),
                A.RandomGamma(gamma_limit=(c.gamma_range[0] * 100, c.gamma_range[1] * 100), p=c.gamma),
            ]
        )
        self._degrade = A.Compose(
            [
                A.MotionBlur(blur_limit=(3, 9), p=c.motion_blur),
                A.GaussianBlur(blur_limit=(3, 3), p=c.gaussian_blur),
                A.OneOf(
                    [
                        A.Downscale(scale_range=(0.4, 0.9), interpolation_pair={"downscale": d, "upscale": u})
                        for d in _INTERPOLATIONS
                        for u in _INTERPOLATIONS[:3]
                    ],
                    p=c.down_up,
                ),
                A.GaussNoise(std_range=(0.01, 0.05), p=c.gaussian_noise),
            ]
        )
        self._jpeg = A.ImageCompression(quality_range=c.jpeg_quality, p=c.jpeg)

    def reset(self) -> None:
        """Restart the per-process call count, for callers that seed every item themselves (the
        trainer does, so that a resumed run draws exactly what an uninterrupted one would)."""
        self._calls = 0

    def rng(self, index: int) -> np.random.Generator:
        """A generator for one item (differs per worker, epoch and call; see module docstring)."""
        import torch

        self._calls += 1
        return np.random.default_rng([self.seed, torch.initial_seed() % (1 << 63), index, self._calls])

    def half_size(self, rng: np.random.Generator) -> bool:
        return bool(rng.random() < self.cfg.half_size)

    def alignment_scale(self, rng: np.random.Generator) -> float:
        return float(np.clip(rng.normal(self.cfg.scale_mean, self.cfg.scale_std), 0.5, 1.5))

    def jitter(self, canvas: int, rng: np.random.Generator) -> np.ndarray:
        """A ``(3, 3)`` homography of canvas pixels applied after alignment (rotation, shift, flip, perspective)."""
        c = self.cfg
        centre = (canvas - 1) / 2.0
        angle = math.radians(c.rotate * rng.uniform(-1, 1) ** 3)
        shift = rng.uniform(-1, 1, size=2) * c.translate * canvas / 224.0
        cos, sin = math.cos(angle), math.sin(angle)
        rot = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        to_origin = np.array([[1.0, 0, -centre], [0, 1.0, -centre], [0, 0, 1.0]])
        back = np.array([[1.0, 0, centre + shift[0]], [0, 1.0, centre + shift[1]], [0, 0, 1.0]])
        h = back @ rot @ to_origin
        if rng.random() < c.flip:
            h = np.array([[-1.0, 0, canvas - 1.0], [0, 1.0, 0], [0, 0, 1.0]]) @ h
        if rng.random() < c.perspective:
            corners = np.array([[0, 0], [canvas - 1, 0], [canvas - 1, canvas - 1], [0, canvas - 1]], np.float32)
            moved = corners + rng.uniform(-1, 1, size=(4, 2)).astype(np.float32) * c.perspective_strength * canvas
            h = cv2.getPerspectiveTransform(corners, moved).astype(np.float64) @ h
        return h

    def photometric(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Colour and degradation augmentations of an aligned uint8 RGB image ``(S, S, 3)``, at the
        reference's face size when ``S`` is smaller (see :attr:`AugmentConfig.reference_canvas`)."""
        h, w = image.shape[:2]
        k = round(self.cfg.reference_canvas / max(h, w)) if self.cfg.reference_canvas else 1
        if k < 2:
            return self._photometric(image, rng)
        # an integer factor, pixel replication up and k x k means down: the round trip is exact, so
        # only the degradation changes the face (a cubic/area round trip alone halved its fine detail)
        up = cv2.resize(image, (w * k, h * k), interpolation=cv2.INTER_NEAREST)
        return cv2.resize(self._photometric(up, rng), (w, h), interpolation=cv2.INTER_AREA)

    def _photometric(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.cfg
        seeds = rng.integers(0, 2**31 - 1, size=3)
        if rng.random() < c.tone_blend:
            image = _tone_blend(image, rng)
        self._colour.set_random_seed(int(seeds[0]))
        image = self._colour(image=image)["image"]
        if rng.random() < c.minmax:
            image = _minmax(image)
        self._degrade.set_random_seed(int(seeds[1]))
        image = self._degrade(image=image)["image"]
        if rng.random() < c.lowfreq_noise:
            image = _lowfreq_noise(image, rng)
        self._jpeg.set_random_seed(int(seeds[2]))
        return np.ascontiguousarray(self._jpeg(image=image)["image"])


def build_augment(cfg: AugmentConfig | None, seed: int = 0) -> FaceAugment | None:
    """The augmentation of ``cfg`` for :class:`~fstmatch.data.FaceDataset`; ``None`` when disabled."""
    if cfg is None or not cfg.enabled:
        return None
    return FaceAugment(cfg, seed)
