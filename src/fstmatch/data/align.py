"""Five-point face alignment (SPEC §2) and the coordinate maps between frames, crops and canvases.

The alignment fits a similarity transform (rotation, uniform scale, translation; least squares)
from five landmarks of the face to a mean-face template placed on a square canvas:

- left eye = mean of dlib points 36..41, right eye = mean of 42..47 (image left / right),
- nose tip = 30, mouth corners = 48 and 54.

:func:`template_points` gives the template in canvas pixels. ``face_width`` is the distance between
the template's eye centres (80 px on a 224 canvas by default); ``scale`` then shrinks (< 1) or grows
(> 1) the whole template about the canvas centre, so the aligned inter-ocular distance is
``face_width * scale`` and a point at distance d from the centre moves to ``scale * d``. At the
default ``scale=0.9`` the eyes are 72 px apart on 224 px. Training-time scale jitter replaces
``scale`` with a random draw (see :mod:`fstmatch.data.augment`).

Conventions: points are (x, y) in pixels with the pixel-centre convention of OpenCV (pixel (i, j)
covers [j-0.5, j+0.5] x [i-0.5, i+0.5]); affine matrices are ``(2, 3)`` float64 mapping source
pixels to destination pixels, ``dst = M[:, :2] @ src + M[:, 2]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

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


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The five alignment points ``(5, 2)`` from 68 dlib landmarks ``(68, 2)`` (x, y)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 68 or lm.shape[1] != 2:
        raise ValueError(f"expected landmarks of shape (68, 2), got {lm.shape}")
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """Left and right eye centres ``(2, 2)`` (means of points 36..41 and 42..47)."""
    return five_points(landmarks)[:2]


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres, in the landmarks' pixels."""
    left, right = eye_centres(landmarks)
    return float(np.linalg.norm(right - left))


def template_points(canvas: int = 224, face_width: float = 80, scale: float = 1.0) -> np.ndarray:
    """The five template points ``(5, 2)`` in canvas pixels (SPEC §2).

    ``ratio = face_width / (canvas * 0.34967)`` makes the eye centres ``face_width`` px apart;
    ``x' = (x * ratio + 0.5) * canvas``; ``y' = (y * ratio + 0.5) * canvas / ((y_lefteye * ratio
    + 0.5) * 2.42)`` puts the eye row at ``canvas / 2.42`` and stretches the template vertically by
    the same factor (the reference's formula). Finally every point is moved towards (``scale`` < 1)
    or away from (``scale`` > 1) the canvas centre by the factor ``scale``.
    """
    ratio = face_width / (canvas * TEMPLATE_EYE_DISTANCE)
    t = TEMPLATE_5PT
    x = (t[:, 0] * ratio + 0.5) * canvas
    y = (t[:, 1] * ratio + 0.5) * canvas / ((t[0, 1] * ratio + 0.5) * EYE_ROW_DIVISOR)
    pts = np.stack([x, y], axis=1)
    centre = canvas / 2.0
    return centre + scale * (pts - centre)


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
    landmarks: np.ndarray, canvas: int = 224, face_width: float = 80, scale: float = 0.9
) -> np.ndarray:
    """Affine ``(2, 3)`` from the landmarks' image to the aligned canvas (SPEC §2)."""
    return fit_similarity(five_points(landmarks), template_points(canvas, face_width, scale))


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
    image: np.ndarray, landmarks: np.ndarray, canvas: int = 224, face_width: float = 80, scale: float = 0.9
) -> np.ndarray:
    """Aligned face ``(canvas, canvas, 3)`` uint8 from ``image`` (H, W, 3) uint8 and its 68 landmarks.

    Bilinear resampling; pixels that fall outside ``image`` are black.
    """
    return warp(image, alignment_matrix(landmarks, canvas, face_width, scale), canvas)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points ``(N, 2)`` through an affine ``(2, 3)`` matrix."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]


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
