"""The five FF++ manipulations, procedurally, each with its own kind of trace.

In a fake ``A_B``, A is the video modified (context, pose, source label) and B the donor (target
label). Every function takes A's camera frame and what it needs of B and returns a
:class:`FakeFrame`: the fake frame, its landmarks, the donor mask (pixels taken from B: the face for
swaps, the expression regions for reenactment) and the trace mask (pixels where the fake departs
from the *ideal* result of the manipulation — the same scene cleanly rendered and photographed with
A's camera noise — plus the blend seam).

| method | donor content | how it is put in | traces |
|---|---|---|---|
| Deepfakes | B's inner face in A's pose | 40 px bottleneck, colour transfer, feathered | blur, colour, seam |
| FaceSwap | B's own frame, landmark-warped | hard paste, no colour correction | skin tone, resampling, hard seam |
| FaceShifter | B's inner face in A's pose, camera-like | Poisson (``cv2.seamlessClone``) | thin, subtle |
| Face2Face | A's face with B's expression (eyes, mouth) | feathered, slightly soft | mouth/eye edges, seam |
| NeuralTextures | A's mouth with B's mouth motion | fine synthetic texture, feathered | texture, seam |
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from fstmatch.synth.face import Identity, Pose, face_points, project
from fstmatch.synth.render import camera, render_face


@dataclass
class FakeFrame:
    """One manipulated frame: ``image`` uint8 (H, W, 3); ``landmarks`` float32 (68, 2);
    ``donor_mask``, ``trace_mask`` uint8 (H, W) in {0, 1}."""

    image: np.ndarray
    landmarks: np.ndarray
    donor_mask: np.ndarray
    trace_mask: np.ndarray


@dataclass(frozen=True)
class Scene:
    """Everything a manipulation of frame t of ``A_B`` may use."""

    a: Identity
    b: Identity
    pose_a: Pose  # A's pose and expression at frame t
    pose_b: Pose  # B's (own video) pose and expression at frame t
    size: tuple[int, int]  # (H, W)
    supersample: int
    blur: float
    noise: float
    real_noise_seed: list[int]  # seed of A's camera noise at frame t (the real frame's)
    fake_noise_seed: list[int]  # seed of any other camera noise this fake needs
    bottleneck: int
    trace_threshold: float
    colour_threshold: float


def _polygon_mask(size: tuple[int, int], pts: np.ndarray, ss: int = 4) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of polygon ``pts`` (K, 2) on an (H, W) frame."""
    h, w = size
    m = np.zeros((h * ss, w * ss), np.uint8)
    cv2.fillPoly(m, [np.round(pts * ss * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _hull(pts: np.ndarray, grow: float = 1.0) -> np.ndarray:
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    c = pts.mean(axis=0)
    return c + grow * (hull - c)


def face_region(lm: np.ndarray) -> np.ndarray:
    """Polygon of the swapped face: jaw points 1-15 and the brows lifted by a third of the
    brow-to-eye distance (where face-swap masks usually end)."""
    brows = lm[17:27].copy()
    eyes_y = lm[36:48, 1].mean()
    brows[:, 1] -= 0.6 * (eyes_y - brows[:, 1]).clip(min=1)
    return _hull(np.concatenate([lm[1:16], brows]))


def _seam(alpha: np.ndarray, width: int = 1) -> np.ndarray:
    """Band of pixels where the blend is neither all-A nor all-donor, at least ``width`` px thick."""
    hard = (alpha > 0.5).astype(np.uint8)
    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    band = cv2.dilate(hard, k) - cv2.erode(hard, k)
    return ((band > 0) | ((alpha > 0.03) & (alpha < 0.97))).astype(np.uint8)


def _traces(fake: np.ndarray, ideal: np.ndarray, alpha: np.ndarray, s: Scene, seam: np.ndarray) -> np.ndarray:
    """Where the fake departs from the ideal result, near the blend region, plus the seam.

    Two kinds of departure: *structural* (the detail above a 2 px Gaussian differs by more than
    ``s.trace_threshold``: blur, resampling, texture, misplaced features) and *colour* (the
    2 px-smoothed colour differs by more than ``s.colour_threshold``: tone mismatch).
    """
    f, i = fake.astype(np.float32), ideal.astype(np.float32)
    low_f, low_i = cv2.GaussianBlur(f, (0, 0), 2.0), cv2.GaussianBlur(i, (0, 0), 2.0)
    structural = np.abs((f - low_f) - (i - low_i)).max(axis=2) > s.trace_threshold
    colour = np.abs(low_f - low_i).max(axis=2) > s.colour_threshold
    diff = cv2.morphologyEx((structural | colour).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    near = cv2.dilate((alpha > 0.03).astype(np.uint8), np.ones((5, 5), np.uint8))
    return ((diff & near) | seam).astype(np.uint8)


def _blend(base: np.ndarray, top: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.clip(np.round(base.astype(np.float32) * (1 - a) + top.astype(np.float32) * a), 0, 255).astype(np.uint8)


def _landmarks(context: Identity, inner: Identity, pose: Pose) -> np.ndarray:
    return project(face_points(context, inner, pose.blink, pose.mouth), pose)[:68].astype(np.float32)


def _ideal(s: Scene, inner: Identity, pose: Pose) -> np.ndarray:
    """The manipulation done perfectly: rendered in one go, A's skin, A's camera noise."""
    img, _ = render_face(s.a, inner, pose, s.size, skin=s.a.skin, supersample=s.supersample)
    return camera(img, np.random.default_rng(s.real_noise_seed), s.blur, s.noise)


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


def _expression_pose(s: Scene, eyes: bool) -> Pose:
    return replace(s.pose_a, mouth=s.pose_b.mouth, blink=s.pose_b.blink if eyes else s.pose_a.blink)


def _colour_transfer(src: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift each channel of ``src`` so its median inside ``mask`` matches ``ref``'s (Deepfakes'
    colour correction; the median follows the skin, which covers most of the face)."""
    m = mask > 0.5
    shift = np.median(ref[m].astype(np.float32), axis=0) - np.median(src[m], axis=0)
    return np.clip(src.astype(np.float32) + shift, 0, 255)


def deepfakes(real: np.ndarray, s: Scene) -> FakeFrame:
    h, w = s.size
    donor, lm = render_face(s.a, s.b, s.pose_a, s.size, skin=s.b.skin, supersample=s.supersample)
    donor = np.round(cv2.GaussianBlur(donor * 255, (0, 0), s.blur)) if s.blur > 0 else donor * 255
    # The autoencoder's output: the face box squeezed through a bottleneck x bottleneck image.
    x0, y0 = np.floor(lm.min(axis=0) - 0.25 * np.ptp(lm, axis=0)).astype(int)
    x1, y1 = np.ceil(lm.max(axis=0) + 0.25 * np.ptp(lm, axis=0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    crop = donor[y0:y1, x0:x1].astype(np.float32)
    small = cv2.resize(crop, (s.bottleneck, s.bottleneck), interpolation=cv2.INTER_AREA)
    decoded = donor.astype(np.float32).copy()
    decoded[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    hard = _polygon_mask(s.size, _hull(face_region(lm), 0.92))
    decoded = _colour_transfer(decoded, real, hard)
    feather = max(1.0, 0.04 * s.pose_a.scale)
    alpha = cv2.GaussianBlur(hard, (0, 0), feather)
    fake = _blend(real, decoded, alpha)
    ideal = _ideal(s, s.b, s.pose_a)
    seam = _seam(alpha)
    return FakeFrame(fake, lm, (alpha > 0.5).astype(np.uint8), _traces(fake, ideal, alpha, s, seam))


def faceswap(real: np.ndarray, s: Scene) -> FakeFrame:
    h, w = s.size
    # B's own camera frame, with A's expression (the 3D model carries A's expression).
    pose_b = replace(s.pose_b, blink=s.pose_a.blink, mouth=s.pose_a.mouth, light=s.pose_a.light,
                     light_dir=s.pose_a.light_dir)
    donor_img, lm_b = render_face(s.b, s.b, pose_b, s.size, supersample=s.supersample)
    donor = camera(donor_img, np.random.default_rng(s.fake_noise_seed), s.blur, s.noise)
    target = _landmarks(s.a, s.b, s.pose_a)  # where B's features go in A's frame
    matrix, _ = cv2.estimateAffine2D(lm_b[17:68], target[17:68], method=cv2.LMEDS)
    if matrix is None:  # degenerate fit cannot happen with 51 distinct points; keep it safe
        matrix = np.array([[1, 0, 0], [0, 1, 0]], np.float64)
    warped = cv2.warpAffine(donor, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lm_w = (lm_b @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
    lm = np.concatenate([_landmarks(s.a, s.a, s.pose_a)[:17], lm_w[17:]]).astype(np.float32)
    region = _hull(face_region(lm), 0.9)
    alpha = (_polygon_mask(s.size, region) > 0.5).astype(np.float32)  # hard blend
    fake = _blend(real, warped, alpha)
    ideal = _ideal(s, s.b, s.pose_a)
    return FakeFrame(fake, lm, alpha.astype(np.uint8), _traces(fake, ideal, alpha, s, _seam(alpha)))


def faceshifter(real: np.ndarray, s: Scene) -> FakeFrame:
    donor_img, lm = render_face(s.a, s.b, s.pose_a, s.size, skin=s.b.skin, supersample=s.supersample)
    donor = camera(donor_img, np.random.default_rng(s.fake_noise_seed), s.blur, s.noise)
    mask = (_polygon_mask(s.size, _hull(face_region(lm), 0.95)) > 0.5).astype(np.uint8)
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0  # seamlessClone needs a margin
    if not mask.any():
        return FakeFrame(real.copy(), _landmarks(s.a, s.a, s.pose_a), mask, mask)
    x, y, bw, bh = cv2.boundingRect(mask)
    center = (x + bw // 2, y + bh // 2)
    fake = cv2.seamlessClone(donor, real, mask * 255, center, cv2.NORMAL_CLONE)
    alpha = mask.astype(np.float32)
    ideal = _ideal(s, s.b, s.pose_a)
    return FakeFrame(fake, lm, mask, _traces(fake, ideal, alpha, s, _seam(alpha)))


def _reenact(real: np.ndarray, s: Scene, eyes: bool, texture: bool) -> FakeFrame:
    pose = _expression_pose(s, eyes)
    img, lm = render_face(s.a, s.a, pose, s.size, supersample=s.supersample)
    lm_a = _landmarks(s.a, s.a, s.pose_a)
    # Regions: the mouth (and eyes) of both expressions, grown, so neither old nor new lips leak.
    regions = [_hull(np.concatenate([lm[48:68], lm_a[48:68]]), 1.45)]
    if eyes:
        regions += [_hull(np.concatenate([lm[k:k + 6], lm_a[k:k + 6]]), 1.6) for k in (36, 42)]
    hard = np.maximum.reduce([_polygon_mask(s.size, r) for r in regions])
    rendered = cv2.GaussianBlur(img * 255, (0, 0), s.blur + 0.5)  # re-rendered: softer than camera
    if texture:
        # Neural rendering's fine texture: a high-frequency pattern, fixed per video (seeded by A, B).
        rng = np.random.default_rng(s.fake_noise_seed[:-1])
        yy, xx = np.mgrid[0:s.size[0], 0:s.size[1]].astype(np.float32)
        pattern = np.zeros(s.size, np.float32)
        for _ in range(3):
            fx, fy, ph = rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(0, 2 * np.pi)
            pattern += np.sin(fx * xx + fy * yy + ph)
        rendered = rendered + 3.0 * pattern[..., None] * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    feather = max(0.8, 0.03 * s.pose_a.scale)
    alpha = cv2.GaussianBlur(hard, (0, 0), feather)
    fake = _blend(real, np.clip(rendered, 0, 255), alpha)
    ideal = _ideal(s, s.a, pose)
    seam = _seam(alpha)
    return FakeFrame(fake, lm, (alpha > 0.5).astype(np.uint8), _traces(fake, ideal, alpha, s, seam))


def face2face(real: np.ndarray, s: Scene) -> FakeFrame:
    return _reenact(real, s, eyes=True, texture=False)


def neuraltextures(real: np.ndarray, s: Scene) -> FakeFrame:
    return _reenact(real, s, eyes=False, texture=True)


MANIPULATIONS = {
    "Deepfakes": deepfakes,
    "Face2Face": face2face,
    "FaceSwap": faceswap,
    "NeuralTextures": neuraltextures,
    "FaceShifter": faceshifter,
}
