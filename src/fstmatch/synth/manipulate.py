"""The five FF++ manipulations, procedurally, each with its own kind of trace.

In a fake ``A_B``, A is the video modified (context, pose, source label) and B the donor (target
label). Every function takes A's camera frame and what it needs of B and returns a
:class:`FakeFrame`: the fake frame, its landmarks, the donor mask (pixels taken from B: the face for
swaps, the expression regions for reenactment) and the trace mask (pixels where the fake departs
from the *ideal* result of the manipulation — the same scene cleanly rendered and photographed with
A's camera noise — plus the blend seam), with its split into fine, coarse and seam parts.

Like FF++'s, most traces are fine detail (texture, sensor noise, resampling) that H.264 at CRF 40
quantises away; few are coarse (colour, hard seams) and survive it.

| method | donor content | how it is put in | traces |
|---|---|---|---|
| Deepfakes | B's inner face in A's pose | bottleneck (texture and noise lost), small colour error, flicker | fine; smooth wide blend |
| FaceSwap | B's own frame, landmark-warped (bilinear) | no colour correction, hard blend | resampling, skin tone, hard seam |
| FaceShifter | B's inner face in A's pose and skin tone | slightly smooth, half-strength foreign noise, thin feather | noise pattern (fine) |
| Face2Face | A's face with B's expression (eyes, mouth) | re-rendered soft, no noise, banded feather | mouth/eye softness, band |
| NeuralTextures | A's lower face with B's mouth motion | fine low-amplitude synthetic texture, no noise | texture (fine) |
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
    ``donor_mask``, ``trace_mask`` uint8 (H, W) in {0, 1}; ``trace_kind`` uint8 (H, W), bits
    :data:`FINE` | :data:`COARSE` | :data:`SEAM`."""

    image: np.ndarray
    landmarks: np.ndarray
    donor_mask: np.ndarray
    trace_mask: np.ndarray
    trace_kind: np.ndarray


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


#: Bits of ``trace_kind``: fine (high-frequency) departure, coarse (low-frequency) departure, seam.
FINE, COARSE, SEAM = 1, 2, 4


def _traces(fake: np.ndarray, ideal: np.ndarray, alpha: np.ndarray, s: Scene,
            seam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the fake departs from the ideal result, near the blend region, plus the seam.

    The departure ``fake - ideal`` is split at a 2 px Gaussian: its *fine* part (above it: lost
    texture, missing or foreign sensor noise, resampling, synthetic texture) is a trace where its
    local RMS (1 px window, max over channels) exceeds ``s.trace_threshold``; its *coarse* part
    (below it: colour and tone errors, misplaced features) where it exceeds ``s.colour_threshold``.
    Returns ``(trace_mask, trace_kind)``, uint8 (H, W): the mask in {0, 1} and the bits
    :data:`FINE` | :data:`COARSE` | :data:`SEAM` of each pixel.
    """
    d = fake.astype(np.float32) - ideal.astype(np.float32)
    low = cv2.GaussianBlur(d, (0, 0), 2.0)
    rms = np.sqrt(cv2.GaussianBlur((d - low) ** 2, (0, 0), 1.0)).max(axis=2)
    near = cv2.dilate((alpha > 0.03).astype(np.uint8), np.ones((5, 5), np.uint8))
    fine = (rms > s.trace_threshold).astype(np.uint8) & near
    coarse = (np.abs(low).max(axis=2) > s.colour_threshold).astype(np.uint8) & near
    kind = fine * FINE | coarse * COARSE | seam.astype(np.uint8) * SEAM
    closed = cv2.morphologyEx((fine | coarse).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return ((closed & near) | seam).astype(np.uint8), kind.astype(np.uint8)


def _blend(base: np.ndarray, top: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.clip(np.round(base.astype(np.float32) * (1 - a) + top.astype(np.float32) * a), 0, 255).astype(np.uint8)


def _landmarks(context: Identity, inner: Identity, pose: Pose) -> np.ndarray:
    return project(face_points(context, inner, pose.blink, pose.mouth), pose)[:68].astype(np.float32)


def _ideal(s: Scene, inner: Identity, pose: Pose, rendered: np.ndarray | None = None) -> np.ndarray:
    """The manipulation done perfectly: rendered in one go, A's skin, A's camera noise.
    ``rendered``: that very rendering when the caller already has it (it is not drawn again)."""
    img = rendered if rendered is not None else render_face(s.a, inner, pose, s.size, skin=s.a.skin,
                                                            supersample=s.supersample)[0]
    return camera(img, np.random.default_rng(s.real_noise_seed), s.blur, s.noise)


def ideal_frame(s: Scene, method: str) -> np.ndarray:
    """The ideal result of ``method`` on the scene's frame (what its trace is measured against)."""
    if method in ("Face2Face", "NeuralTextures"):
        return _ideal(s, s.a, _expression_pose(s, eyes=method == "Face2Face"))
    return _ideal(s, s.b, s.pose_a)


def _expression_pose(s: Scene, eyes: bool) -> Pose:
    return replace(s.pose_a, mouth=s.pose_b.mouth, blink=s.pose_b.blink if eyes else s.pose_a.blink)


def _colour_transfer(src: np.ndarray, ref: np.ndarray, mask: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Shift each channel of ``src`` by ``strength`` times the difference of its median inside
    ``mask`` to ``ref``'s (Deepfakes' colour correction; the median follows the skin)."""
    m = mask > 0.5
    if not m.any():
        return src.astype(np.float32)
    shift = np.median(ref[m].astype(np.float32), axis=0) - np.median(src[m].astype(np.float32), axis=0)
    return src.astype(np.float32) + strength * shift


def _fake(fake: np.ndarray, lm: np.ndarray, alpha: np.ndarray, ideal: np.ndarray, s: Scene) -> FakeFrame:
    mask, kind = _traces(fake, ideal, alpha, s, _seam(alpha))
    return FakeFrame(fake, lm.astype(np.float32), (alpha > 0.5).astype(np.uint8), mask, kind)


def _lens(img: np.ndarray, sigma: float) -> np.ndarray:
    """float (H, W, 3) in [0, 1] -> float 0..255 through a Gaussian lens of ``sigma`` px, no noise."""
    out = img.astype(np.float32) * 255
    return cv2.GaussianBlur(out, (0, 0), sigma) if sigma > 0 else out


def deepfakes(real: np.ndarray, s: Scene) -> FakeFrame:
    """The autoencoder's face: B's inner face in A's pose through a ``bottleneck``-px image (fine
    texture and sensor noise lost), colour-matched to A with a small per-video error, a per-frame
    flicker (sub-pixel shift, brightness), blended with a wide smooth feather."""
    h, w = s.size
    donor, lm = render_face(s.a, s.b, s.pose_a, s.size, skin=s.b.skin, supersample=s.supersample)
    donor = _lens(donor, s.blur)
    video_rng, frame_rng = np.random.default_rng(s.fake_noise_seed[:-1]), np.random.default_rng(s.fake_noise_seed)
    x0, y0 = np.floor(lm.min(axis=0) - 0.25 * np.ptp(lm, axis=0)).astype(int)
    x1, y1 = np.ceil(lm.max(axis=0) + 0.25 * np.ptp(lm, axis=0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    decoded = donor.copy()
    if x1 - x0 > 1 and y1 - y0 > 1:
        small = cv2.resize(donor[y0:y1, x0:x1], (s.bottleneck, s.bottleneck), interpolation=cv2.INTER_AREA)
        dx, dy = frame_rng.normal(0, 0.25, 2)  # flicker: the decoder's output jitters
        up = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
        decoded[y0:y1, x0:x1] = cv2.warpAffine(up, np.float32([[1, 0, dx], [0, 1, dy]]), (x1 - x0, y1 - y0),
                                               borderMode=cv2.BORDER_REPLICATE)
    hard = _polygon_mask(s.size, _hull(face_region(lm), 0.92))
    colour_error = video_rng.normal(0, 1.5, 3) + frame_rng.normal(0, 0.8)  # 0..255 units
    decoded = _colour_transfer(decoded, real, hard) + colour_error.astype(np.float32)
    alpha = cv2.GaussianBlur(hard, (0, 0), max(1.0, 0.06 * s.pose_a.scale))
    fake = _blend(real, np.clip(decoded, 0, 255), alpha)
    return _fake(fake, lm, alpha, _ideal(s, s.b, s.pose_a), s)


def faceswap(real: np.ndarray, s: Scene) -> FakeFrame:
    """B's own camera frame (B's pose, A's expression and light) warped onto A by an affine fit of
    the inner landmarks (bilinear resampling), no colour correction, hard blend."""
    h, w = s.size
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
    lm = np.concatenate([_landmarks(s.a, s.a, s.pose_a)[:17], lm_w[17:]])
    region = _polygon_mask(s.size, _hull(face_region(lm), 0.9))
    alpha = (region > 0.5).astype(np.float32)  # hard blend
    fake = _blend(real, np.clip(warped, 0, 255), alpha)
    return _fake(fake, lm, alpha, _ideal(s, s.b, s.pose_a), s)


def faceshifter(real: np.ndarray, s: Scene) -> FakeFrame:
    """High fidelity: B's inner face in A's pose with A's skin tone, slightly smoother than the lens
    and without A's camera noise pattern (a weaker noise of its own), blended with a thin feather."""
    donor_img, lm = render_face(s.a, s.b, s.pose_a, s.size, skin=s.a.skin, supersample=s.supersample)
    donor = _lens(donor_img, s.blur + 0.005 * s.pose_a.scale)  # the generator's output: smoother than the lens
    # Its own, weaker noise pattern (not A's camera's): half the sensor noise, another seed.
    rng = np.random.default_rng(s.fake_noise_seed)
    donor = camera(np.clip(donor / 255, 0, 1), rng, 0.0, 0.5 * s.noise).astype(np.float32)
    hard = _polygon_mask(s.size, _hull(face_region(lm), 0.95))
    donor = _colour_transfer(donor, real, hard)
    alpha = cv2.GaussianBlur(hard, (0, 0), 0.8)
    fake = _blend(real, np.clip(donor, 0, 255), alpha)
    return _fake(fake, lm, alpha, _ideal(s, s.b, s.pose_a, donor_img), s)  # the same rendering as the ideal's


def _reenact(real: np.ndarray, s: Scene, eyes: bool, texture: bool) -> FakeFrame:
    pose = _expression_pose(s, eyes)
    img, lm = render_face(s.a, s.a, pose, s.size, supersample=s.supersample)
    lm_a = _landmarks(s.a, s.a, s.pose_a)
    # Regions: the mouth (and eyes) of both expressions, grown, so neither old nor new lips leak.
    if texture:  # NeuralTextures re-renders the lower face around the mouth (nose base to chin)
        regions = [_hull(np.concatenate([lm[48:68], lm_a[48:68], lm[31:36], lm[5:12]]), 0.9)]
    else:
        regions = [_hull(np.concatenate([lm[48:68], lm_a[48:68]]), 1.45)]
    if eyes:
        regions += [_hull(np.concatenate([lm[k:k + 6], lm_a[k:k + 6]]), 1.6) for k in (36, 42)]
    hard = np.maximum.reduce([_polygon_mask(s.size, r) for r in regions])
    video_rng = np.random.default_rng(s.fake_noise_seed[:-1])
    if texture:
        # Neural rendering: a little soft, no sensor noise, a fine synthetic texture
        # (periods of 0.12-0.2 face widths, ~7/255 RMS) fixed per video in frame coordinates.
        rendered = _lens(img, s.blur + 0.008 * s.pose_a.scale)  # slightly softer than the camera
        yy, xx = np.mgrid[0:s.size[0], 0:s.size[1]].astype(np.float32)
        pattern = np.zeros(s.size, np.float32)
        for _ in range(3):
            period = video_rng.uniform(0.12, 0.2) * s.pose_a.scale  # face units -> px
            f, th, ph = 2 * np.pi / period, video_rng.uniform(0, np.pi), video_rng.uniform(0, 2 * np.pi)
            pattern += np.sin(f * (np.cos(th) * xx + np.sin(th) * yy) + ph)
        rendered += 5.5 * pattern[..., None] * video_rng.uniform(0.8, 1.2, 3).astype(np.float32)
        feather = max(0.8, 0.03 * s.pose_a.scale)
    else:
        # Face2Face's re-rendering: softer than the camera, no sensor noise, a slightly different
        # brightness, over a wide blending band.
        rendered = _lens(img, s.blur + 0.014 * s.pose_a.scale) * video_rng.uniform(0.98, 1.02)
        feather = max(1.0, 0.05 * s.pose_a.scale)
    alpha = cv2.GaussianBlur(hard, (0, 0), feather)
    fake = _blend(real, np.clip(rendered, 0, 255), alpha)
    return _fake(fake, lm, alpha, _ideal(s, s.a, pose, img), s)  # A's own face: the ideal's rendering


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
