"""Facial parts as a feature mask for :func:`fstmatch.explain.shapley`, from 68 landmarks (dlib order).

Points (0-based, dlib's 68): jaw 0-16, brows 17-21 and 22-26, nose 27-35, eyes 36-41 and 42-47,
mouth 48-67 (outer lip 48-59). ``d`` is the distance between the two eye centres and ``up`` the unit
vector perpendicular to the line through them, pointing away from the mouth. Each part (docs/explain.md):

- ``eyes``: each eye's 6-point contour scaled 1.6x about its centre (lids included);
- ``brows``: each brow's 5 points as a band 0.3 d thick (0.15 d above and below the points);
- ``nose``: the convex hull of points 27-35;
- ``mouth``: the outer lip contour (48-59) scaled 1.2x about its centre;
- ``jaw``: the band between the jaw line (0-16) and the jaw line moved 20 % of the way towards
  the nose tip (30), plus the face below the mouth corners (the chin);
- ``cheeks``: the face between the eye line and the mouth corners' level;
- ``forehead``: above the brow bands, up to 0.8 d above the brow points;
- ``rest``: everything else (background, hair, neck, the temples and the face between brows and eyes).

"The face" is the polygon of the jaw line closed across the top of the brow bands. Where parts
overlap, the smaller part wins (eyes, brows, mouth, nose, jaw, cheeks, forehead, in that order).
Rasterised with numpy (pixel centres at integer coordinates), no OpenCV needed.
"""

from __future__ import annotations

import numpy as np
import torch

from fstmatch.explain._utils import ShapleyInputError

#: label -> name of the parts :func:`face_concepts` draws
FACE_CONCEPTS = ("rest", "forehead", "cheeks", "jaw", "nose", "mouth", "brows", "eyes")


def _inside(poly: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test of pixel centres (xs, ys broadcastable) for poly (V, 2)."""
    inside = np.zeros(np.broadcast(xs, ys).shape, dtype=bool)
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for a, b, c, d in zip(x0, y0, x1, y1):
        if b == d:
            continue
        crosses = (b > ys) != (d > ys)
        x_at = a + (ys - b) * (c - a) / (d - b)
        inside ^= crosses & (xs < x_at)
    return inside


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (monotone chain), counter-clockwise, (V, 2)."""
    pts = sorted(map(tuple, points))

    def turn(o, a, b) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2 and turn(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(reversed(pts))
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def _scaled(points: np.ndarray, factor: float) -> np.ndarray:
    centre = points.mean(0)
    return centre + (points - centre) * factor


def _one(lm: np.ndarray, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    eye_r, eye_l = lm[36:42].mean(0), lm[42:48].mean(0)
    axis = eye_l - eye_r
    d = float(np.linalg.norm(axis))
    if not d > 0:
        raise ShapleyInputError("face_concepts: the two eye centres coincide; are the landmarks in dlib's 68 order?")
    up = np.array([axis[1], -axis[0]]) / d  # perpendicular to the eye line
    if np.dot(lm[48:60].mean(0) - (eye_r + eye_l) / 2, up) > 0:
        up = -up  # away from the mouth
    height = (xs - eye_r[0]) * up[0] + (ys - eye_r[1]) * up[1]  # signed distance above the eye line
    mouth_level = float(np.dot(lm[[48, 54]].mean(0) - eye_r, up))

    brows = [lm[17:22], lm[22:27]]
    brow_top = np.concatenate([b + 0.15 * d * up for b in brows])
    face = _inside(np.concatenate([lm[0:17], brow_top[::-1]]), xs, ys)
    parts = {}
    parts["forehead"] = _inside(np.concatenate([brow_top, (brow_top + 0.65 * d * up)[::-1]]), xs, ys)
    parts["cheeks"] = face & (height <= 0) & (height > mouth_level)
    inner = lm[0:17] + 0.2 * (lm[30] - lm[0:17])
    parts["jaw"] = _inside(np.concatenate([lm[0:17], inner[::-1]]), xs, ys) | (face & (height <= mouth_level))
    parts["nose"] = _inside(_hull(lm[27:36]), xs, ys)
    parts["mouth"] = _inside(_scaled(lm[48:60], 1.2), xs, ys)
    parts["brows"] = np.zeros_like(face)
    for b in brows:
        parts["brows"] |= _inside(np.concatenate([b + 0.15 * d * up, (b - 0.15 * d * up)[::-1]]), xs, ys)
    parts["eyes"] = _inside(_scaled(lm[36:42], 1.6), xs, ys) | _inside(_scaled(lm[42:48], 1.6), xs, ys)
    out = np.zeros((h, w), dtype=np.int64)
    for label, name in enumerate(FACE_CONCEPTS):
        if label:
            out[parts[name]] = label
    empty = [name for label, name in enumerate(FACE_CONCEPTS) if not (out == label).any()]
    if empty:
        raise ShapleyInputError(f"face_concepts: no pixel of the crop is {', '.join(empty)}; is the face inside "
                                f"the {h}x{w} crop and are the landmarks in crop pixels (x, y), dlib's 68 order?")
    return out


def face_concepts(landmarks68, size: int | tuple[int, int]) -> torch.Tensor:
    """Integer label map of facial parts (``FACE_CONCEPTS``: 0 rest, 1 forehead, 2 cheeks, 3 jaw,
    4 nose, 5 mouth, 6 brows, 7 eyes) for :func:`~fstmatch.explain.shapley`'s ``feature_mask``.

    Args:
        landmarks68: (68, 2) or (N, 68, 2) (x, y) in crop pixels, dlib's 68-point order.
        size: the crop's side, or (H, W).

    Returns:
        int64 (H, W) or (N, H, W). Raises ShapleyInputError if a part covers no pixel.
    """
    lm = np.asarray(landmarks68.detach().cpu() if isinstance(landmarks68, torch.Tensor) else landmarks68,
                    dtype=np.float64)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if lm.shape[-2:] != (68, 2) or lm.ndim not in (2, 3):
        raise ShapleyInputError(f"landmarks68 must have shape (68, 2) or (N, 68, 2), got {lm.shape}")
    if not np.isfinite(lm).all():
        raise ShapleyInputError("landmarks68 contain NaN or infinite values")
    if lm.ndim == 2:
        return torch.from_numpy(_one(lm, h, w))
    return torch.from_numpy(np.stack([_one(x, h, w) for x in lm]))
