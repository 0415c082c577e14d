"""Five-point face alignment (docs/method.md §2) in named conventions, and the coordinate maps between
frames, crops and canvases.

An alignment fits a similarity transform (rotation, uniform scale, translation; least squares)
from five landmarks of the face to a five-point template placed on a square canvas. A
*convention* (:data:`CONVENTIONS`, :func:`get_convention`) says which five landmarks, which
template and which defaults, so that a detector is analysed on crops like those it was trained on:

- ``fstmatch`` (the reference's, default): left eye = mean of dlib points 36..41, right eye =
  mean of 42..47, nose tip 30, mouth corners 48 and 54, onto the reference mean face
  (:func:`template_points`); canvas 224, ``face_width`` 80 px per 224, ``scale`` 0.9.
- ``deepfakebench`` (SCLBD/DeepfakeBench ``preprocessing/preprocess.py``): dlib points 37, 44,
  30, 49, 55 (its ``get_keypts``: one upper-eyelid point per eye, the nose tip, the upper-lip
  points next to the mouth corners), onto the ArcFace 112 px template with a margin scale of 1.3
  (:func:`deepfakebench_template`); canvas 256, ``scale`` = that margin scale, 1.3.

Conventions: points are (x, y) in pixels with the pixel-centre convention of OpenCV (pixel (i, j)
covers [j-0.5, j+0.5] x [i-0.5, i+0.5]); affine matrices are ``(2, 3)`` float64 mapping source
pixels to destination pixels, ``dst = M[:, :2] @ src + M[:, 2]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fstmatch.errors import UserError

#: Reference mean-face template, normalised (x, y): left eye, right eye, nose tip, mouth left, mouth right.
TEMPLATE_5PT = np.array(
    [
        [-0.17607, -0.172844],
        [0.1736, -0.17356],
        [-0.00182, 0.0357164],
        [-0.14617, 0.20185],
        [0.14496, 0.19943],
    ],
    dtype=np.float64,
)
#: Horizontal eye-to-eye distance of :data:`TEMPLATE_5PT` (normalised units).
TEMPLATE_EYE_DISTANCE = 0.34967
#: The template's eye row lands at ``canvas / EYE_ROW_DIVISOR`` (the reference's vertical placement).
EYE_ROW_DIVISOR = 2.42

#: DeepfakeBench's template (``img_align_crop`` in its ``preprocessing/preprocess.py``): InsightFace's
#: ArcFace five points for a 112 x 96 crop, (x, y) px: left eye, right eye, nose tip, mouth left,
#: mouth right. DeepfakeBench shifts x by +8 (the 112 x 112 ArcFace crop) before scaling.
ARCFACE_112 = np.array(
    [
        [30.2946, 51.6963],
        [65.5318, 51.5014],
        [48.0252, 71.7366],
        [33.5493, 92.3655],
        [62.7299, 92.2041],
    ],
    dtype=np.float64,
)
#: DeepfakeBench's five landmarks (0-based dlib indices, as its ``get_keypts`` reads them).
DEEPFAKEBENCH_POINTS = (37, 44, 30, 49, 55)


def _as_landmarks(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 68 or lm.shape[1] != 2:
        raise ValueError(f"expected landmarks of shape (68, 2), got {lm.shape}")
    return lm


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The ``fstmatch`` five alignment points ``(5, 2)`` from 68 dlib landmarks ``(68, 2)`` (x, y)."""
    lm = _as_landmarks(landmarks)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def deepfakebench_points(landmarks: np.ndarray) -> np.ndarray:
    """DeepfakeBench's five points ``(5, 2)``: dlib landmarks 37, 44, 30, 49, 55."""
    return _as_landmarks(landmarks)[list(DEEPFAKEBENCH_POINTS)]


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """Left and right eye centres ``(2, 2)`` (means of points 36..41 and 42..47)."""
    return five_points(landmarks)[:2]


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres, in the landmarks' pixels."""
    left, right = eye_centres(landmarks)
    return float(np.linalg.norm(right - left))


def template_points(canvas: int = 224, face_width: float = 80, scale: float = 1.0) -> np.ndarray:
    """The ``fstmatch`` template ``(5, 2)`` in canvas pixels (docs/method.md §2), exactly as the reference's
    ``align_5p`` / ``get_mean_face`` computes it (without its integer eye centres).

    The normalised mean face is first multiplied by ``scale`` (``t = TEMPLATE_5PT * scale``), then
    placed: ``ratio = face_width / (canvas * 0.34967)``; ``x' = (t_x * ratio + 0.5) * canvas``;
    ``y' = (t_y * ratio + 0.5) * canvas / ((t_y,lefteye * ratio + 0.5) * 2.42)``. So the eye
    centres are ``face_width * scale`` px apart horizontally, the eye row stays at ``canvas / 2.42``
    for every ``scale``, and the vertical stretch is recomputed from the scaled eye.
    """
    ratio = face_width / (canvas * TEMPLATE_EYE_DISTANCE)
    t = TEMPLATE_5PT * scale
    x = (t[:, 0] * ratio + 0.5) * canvas
    y = (t[:, 1] * ratio + 0.5) * canvas / ((t[0, 1] * ratio + 0.5) * EYE_ROW_DIVISOR)
    return np.stack([x, y], axis=1)


def deepfakebench_template(canvas: int = 256, scale: float = 1.3) -> np.ndarray:
    """DeepfakeBench's template ``(5, 2)`` in canvas pixels (``img_align_crop``, margin ``scale``).

    ``d = ARCFACE_112 + (8, 0)`` scaled by ``canvas / 112``; a margin of ``canvas * (scale - 1) / 2``
    is added on each side and the whole shrunk back onto the canvas:
    ``p = (d * canvas / 112 + canvas * (scale - 1) / 2) / scale``. At 256 px and 1.3 the eyes are
    62.0 px apart, at y = 120.4 and 120.1 (DeepfakeBench computes this in float32; we use float64).
    """
    d = ARCFACE_112 + np.array([8.0, 0.0])
    margin = canvas * (scale - 1.0) / 2.0
    return (d * canvas / 112.0 + margin) * canvas / (canvas + 2.0 * margin)


@dataclass(frozen=True)
class Convention:
    """A named alignment convention: five landmarks, a template, the default canvas and scale.

    ``template(canvas, face_width, scale)`` gives the template in canvas pixels; ``face_width``
    exists in the ``fstmatch`` convention only. ``scale``'s meaning is the convention's own
    (``fstmatch``: the template's size, < 1 = smaller face; ``deepfakebench``: the margin scale,
    > 1 = smaller face). ``jitter_scale(scale, draw, mean)`` is the scale used when training-time
    augmentation draws ``draw`` ~ N(mean, std): ``fstmatch`` uses the draw itself (the reference);
    other conventions zoom their own ``scale`` by the same relative amount.
    """

    name: str
    canvas: int
    scale: float
    points: Callable[[np.ndarray], np.ndarray]
    has_face_width: bool
    source: str

    def template(self, canvas: int | None = None, face_width: float | None = None,
                 scale: float | None = None) -> np.ndarray:
        canvas = self.canvas if canvas is None else canvas
        scale = self.scale if scale is None else scale
        if scale <= 0:
            raise UserError(f"alignment scale must be > 0, got {scale}")
        if self.has_face_width:
            fw = round(canvas * 80 / 224) if face_width is None else face_width
            return template_points(canvas, fw, scale)
        if face_width is not None:
            raise UserError(f"face_width applies to the fstmatch alignment convention only, not {self.name!r}")
        return deepfakebench_template(canvas, scale)

    def jitter_scale(self, scale: float | None, draw: float, mean: float) -> float:
        if self.name == "fstmatch":
            return draw
        base = self.scale if scale is None else scale
        return base * mean / draw  # margin scale: a larger face (draw > mean) means less margin


CONVENTIONS: dict[str, Convention] = {
    "fstmatch": Convention("fstmatch", 224, 0.9, five_points, True,
                           "the reference's mean-face template (docs/method.md §2)"),
    "deepfakebench": Convention("deepfakebench", 256, 1.3, deepfakebench_points, False,
                                "DeepfakeBench preprocessing/preprocess.py: ArcFace template, margin scale 1.3"),
}


def get_convention(name: str | Convention) -> Convention:
    """The :class:`Convention` called ``name``; unknown names raise :class:`UserError` listing them."""
    if isinstance(name, Convention):
        return name
    if name not in CONVENTIONS:
        raise UserError(f"unknown alignment convention {name!r}; choose one of: {', '.join(CONVENTIONS)}")
    return CONVENTIONS[name]


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``(2, 3)`` mapping points ``src (N, 2)`` onto ``dst (N, 2)``.

    Solves for ``a, b, tx, ty`` in ``x' = a x - b y + tx``, ``y' = b x + a y + ty`` (rotation by
    ``atan2(b, a)``, uniform scale ``hypot(a, b)``, no reflection).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = len(src)
    a = np.zeros((2 * n, 4))
    a[0::2] = np.column_stack([src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)])
    a[1::2] = np.column_stack([src[:, 1], src[:, 0], np.zeros(n), np.ones(n)])
    (ca, cb, tx, ty), *_ = np.linalg.lstsq(a, dst.reshape(-1), rcond=None)
    return np.array([[ca, -cb, tx], [cb, ca, ty]])


def alignment_matrix(
    landmarks: np.ndarray, canvas: int | None = None, face_width: float | None = None,
    scale: float | None = None, convention: str | Convention = "fstmatch",
) -> np.ndarray:
    """Affine ``(2, 3)`` from the landmarks' image to the aligned canvas (docs/method.md §2).

    ``None`` takes the convention's default (``fstmatch``: canvas 224, face width
    ``round(canvas * 80 / 224)``, scale 0.9; ``deepfakebench``: canvas 256, margin scale 1.3).
    """
    conv = get_convention(convention)
    return fit_similarity(conv.points(landmarks), conv.template(canvas, face_width, scale))


def warp(image: np.ndarray, matrix: np.ndarray, canvas: int, nearest: bool = False) -> np.ndarray:
    """Warp ``image`` (H, W[, C]) with ``matrix`` onto a ``canvas x canvas`` image; black outside."""
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        (canvas, canvas),
        flags=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def align_face(
    image: np.ndarray, landmarks: np.ndarray, canvas: int | None = None, face_width: float | None = None,
    scale: float | None = None, convention: str | Convention = "fstmatch",
) -> np.ndarray:
    """Aligned face ``(canvas, canvas, 3)`` uint8 from ``image`` (H, W, 3) uint8 and its 68 landmarks.

    Bilinear resampling; pixels that fall outside ``image`` are black. ``None``: the convention's
    defaults (see :func:`alignment_matrix`).
    """
    conv = get_convention(convention)
    side = conv.canvas if canvas is None else canvas
    return warp(image, alignment_matrix(landmarks, side, face_width, scale, conv), side)


def crop_to_frame(points: np.ndarray, box: Sequence[float], crop_size: int) -> np.ndarray:
    """Crop pixels -> frame pixels, for a crop of side ``crop_size`` px that is ``box`` (x0, y0, x1, y1) resized.

    Pixel-centre convention (as ``cv2.resize``): ``f = x0 + (c + 0.5) * s - 0.5`` with
    ``s = (x1 - x0) / crop_size``; exactly ``f = x0 + c`` when the crop is at native resolution.
    """
    x0, y0, x1, _ = box
    s = (x1 - x0) / crop_size
    return (np.asarray(points, dtype=np.float64) + 0.5) * s - 0.5 + np.array([x0, y0], dtype=np.float64)


def frame_to_crop(points: np.ndarray, box: Sequence[float], crop_size: int) -> np.ndarray:
    """Frame pixels -> crop pixels (inverse of :func:`crop_to_frame`)."""
    x0, y0, x1, _ = box
    s = (x1 - x0) / crop_size
    return (np.asarray(points, dtype=np.float64) - np.array([x0, y0], dtype=np.float64) + 0.5) / s - 0.5
