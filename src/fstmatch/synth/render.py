"""Drawing procedural faces: anti-aliased vector drawing on a supersampled canvas, shading, camera.

:func:`render_face` draws one frame: background, clothing, hair, head outline of the *context*
identity, inner face (brows, eyes with textured irises, nose, mouth, marks) of the *inner* identity,
in a given :class:`~fstmatch.synth.face.Pose`, as base colours plus coverage layers (head skin,
inner face, hair); :func:`fstmatch.synth.shading.shade` then lights it from a 3-D head shape with
skin and hair texture. It returns a float RGB image in [0, 1] before the camera and the 68
landmarks in frame pixels. :func:`camera` adds lens softness and signal-dependent sensor noise and
quantises.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from fstmatch.synth.face import FOREHEAD_POINTS, Identity, Pose, face_points, project
from fstmatch.synth.shading import shade

_SHIFT = 4  # cv2 fixed-point bits: coordinates carry 1/16 pixel
_ONE = 1 << _SHIFT


def _fix(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _ONE).astype(np.int32)


def _rgb(color: tuple[float, ...] | np.ndarray, factor: float = 1.0) -> tuple[int, int, int]:
    c = np.clip(np.asarray(color, dtype=np.float64) * factor, 0, 1) * 255
    return int(c[0]), int(c[1]), int(c[2])


def _poly(img: np.ndarray, pts: np.ndarray, color: tuple[int, int, int]) -> None:
    cv2.fillPoly(img, [_fix(pts)], color, lineType=cv2.LINE_AA, shift=_SHIFT)


def _line(img: np.ndarray, pts: np.ndarray, color: tuple[int, int, int], width: float, closed: bool = False) -> None:
    cv2.polylines(img, [_fix(pts)], closed, color, max(1, round(width)), lineType=cv2.LINE_AA, shift=_SHIFT)


def _ellipse(img: np.ndarray, center: np.ndarray, axes: tuple[float, float], angle: float,
             color: tuple[int, int, int]) -> None:
    c = _fix(center)
    ax = (max(1, round(axes[0] * _ONE)), max(1, round(axes[1] * _ONE)))
    cv2.ellipse(img, (int(c[0]), int(c[1])), ax, angle, 0, 360, color, -1, cv2.LINE_AA, _SHIFT)


@lru_cache(maxsize=16)
def _catmull_rom_basis(n: int) -> np.ndarray:
    """(n, 4) weights of the four control points at ``n`` parameter values in [0, 1)."""
    t = np.linspace(0, 1, n, endpoint=False)
    return 0.5 * np.stack([-t + 2 * t**2 - t**3, 2 - 5 * t**2 + 3 * t**3, t + 4 * t**2 - 3 * t**3, -(t**2) + t**3], 1)


def _smooth_curve(pts: np.ndarray, n: int = 6) -> np.ndarray:
    """Catmull-Rom curve through ``pts`` (K, 2), ``n`` samples per segment (open curve)."""
    p = np.concatenate([pts[:1], pts, pts[-1:]], axis=0)
    k = len(pts) - 1
    windows = np.stack([p[i:i + k] for i in range(4)], axis=1)  # (segments, 4, 2)
    curve = np.einsum("nj,sjd->snd", _catmull_rom_basis(n), windows).reshape(-1, 2)
    return np.concatenate([curve, pts[-1:]], axis=0)


@lru_cache(maxsize=32)
def _background(context: Identity, h: int, w: int) -> np.ndarray:
    """The context's backdrop (vertical gradient plus furniture shapes), uint8 (h, w, 3); static."""
    ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top, bottom = np.asarray(context.bg_top, np.float32), np.asarray(context.bg_bottom, np.float32)
    canvas = np.round(255 * (top * (1 - ramp) + bottom * ramp)).astype(np.uint8).repeat(w, axis=1)
    for kind, fx, fy, fw, fh, r, g, b in context.bg_shapes:
        center = np.array([fx * w, fy * h])
        if kind == 0:
            half = np.array([fw * w, fh * h]) / 2
            rect = center + half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
            _poly(canvas, rect, _rgb((r, g, b)))
        else:
            _ellipse(canvas, center, (fw * w / 2, fh * h / 2), 0, _rgb((r, g, b)))
    canvas.flags.writeable = False
    return canvas


def render_face(
    context: Identity,
    inner: Identity,
    pose: Pose,
    size: tuple[int, int],
    *,
    skin: tuple[float, float, float] | None = None,
    supersample: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one frame.

    Args:
        context: identity giving background, clothing, hair and head outline.
        inner: identity giving the inner face (eyes, brows, nose, mouth, marks, skin tone).
        pose: head pose and expression (pixel units of the output frame).
        size: ``(height, width)`` of the output in pixels.
        skin: skin colour override (a colour-corrected swap uses the context's skin).
        supersample: drawing resolution factor (anti-aliasing).

    Returns:
        ``(image, landmarks)``: float32 ``(H, W, 3)`` RGB in [0, 1] (before :func:`camera`) and
        float32 ``(68, 2)`` landmarks in frame pixels (x, y), dlib order.
    """
    h, w = size
    ss = supersample
    canvas = _background(context, h * ss, w * ss).copy()
    # Coverage layers drawn with the same shapes: R head skin, G inner face, B hair.
    layers = np.zeros_like(canvas)
    skin_l, inner_l, hair_l, none_l = (255, 0, 0), (255, 255, 0), (0, 0, 255), (0, 0, 0)

    skin_c = np.asarray(skin if skin is not None else inner.skin)
    ctx_skin = np.asarray(context.skin)
    px_pose = Pose(pose.cx * ss, pose.cy * ss, pose.scale * ss, pose.roll, pose.yaw, pose.pitch)
    pts3 = face_points(context, inner, pose.blink, pose.mouth)
    p = project(pts3, px_pose)
    lm = p[:68]
    forehead = p[68:68 + FOREHEAD_POINTS]
    ears = p[68 + FOREHEAD_POINTS:70 + FOREHEAD_POINTS]
    irises = p[70 + FOREHEAD_POINTS:72 + FOREHEAD_POINTS]
    unit = pose.scale * ss  # pixels per face unit on the canvas

    def proj(xyz: list[tuple[float, float, float]]) -> np.ndarray:
        return project(np.asarray(xyz, dtype=np.float64), px_pose)

    length = context.face_length
    # Clothing and neck (context skin: a swap never reaches below the jaw).
    neck = proj([(-0.26, 0.4, -0.2), (0.26, 0.4, -0.2), (0.3, length + 0.6, -0.2), (-0.3, length + 0.6, -0.2)])
    _poly(canvas, neck, _rgb(ctx_skin, 0.8))
    _poly(layers, neck, skin_l)
    shoulders = proj([(-0.3, length + 0.45, -0.3), (0.3, length + 0.45, -0.3), (1.6, length + 0.8, -0.3),
                      (1.8, 6.0, -0.3), (-1.8, 6.0, -0.3), (-1.6, length + 0.8, -0.3)])
    _poly(canvas, shoulders, _rgb(context.cloth_color))
    _poly(layers, shoulders, none_l)
    _line(canvas, proj([(-0.2, length + 0.46, -0.2), (0.0, length + 0.62, -0.2), (0.2, length + 0.46, -0.2)]),
          _rgb(context.cloth_color, 0.6), 0.03 * unit)
    # Hair behind the head (long hair falls to the shoulders).
    hv, top = context.hair_volume, context.hair_top + 0.35
    radius = 0.5 * context.jaw_width + hv
    arc = [(radius * np.cos(t), 0.06 - (top + 0.06 + hv) * np.sin(t) ** 0.8, -0.3) for t in np.linspace(0, np.pi, 13)]
    drop = 0.15 + 0.9 * context.hair_long
    back_pts = [(radius, drop, -0.3), *arc, (-radius, drop, -0.3)]
    _poly(canvas, proj(back_pts), _rgb(context.hair_color, 0.8))
    _poly(layers, proj(back_pts), hair_l)
    # Ears, then the head: jaw outline closed over the forehead.
    for e in ears:
        axes = (0.06 * context.ear_size * unit, 0.11 * context.ear_size * unit)
        _ellipse(canvas, e, axes, np.degrees(pose.roll), _rgb(ctx_skin, 0.9))
        _ellipse(layers, e, axes, np.degrees(pose.roll), skin_l)
    head = np.concatenate([lm[:17], forehead[1:-1]], axis=0)
    _poly(canvas, head, _rgb(ctx_skin))
    _poly(layers, head, skin_l)
    # Inner face skin (the swapped region's tone); the shading gives the head its volume.
    inner_skin = np.concatenate([lm[1:16], forehead[3:-3]], axis=0)
    centre = lm[27:31].mean(axis=0)
    _poly(canvas, centre + 0.97 * (inner_skin - centre), _rgb(skin_c))
    _poly(layers, centre + 0.97 * (inner_skin - centre), inner_l)
    # Hair in front: a cap down to the hairline.
    hl = context.hair_top
    cap = [(0.5 * context.jaw_width * 1.04, 0.0, -0.2)]
    cap += [((0.5 * context.jaw_width + hv) * np.cos(t), 0.06 - (top + 0.06 + hv) * np.sin(t) ** 0.8, -0.2)
            for t in np.linspace(0, np.pi, 13)]
    cap += [(-0.5 * context.jaw_width * 1.04, 0.0, -0.2)]
    cap += [(x, -hl + 0.12 * (2 * abs(x)) ** 2 - 0.04 * np.sin(9 * x), 0.05) for x in np.linspace(-0.45, 0.45, 11)]
    _poly(canvas, proj(cap), _rgb(context.hair_color))
    _poly(layers, proj(cap), hair_l)

    # Marks (moles, freckles) under the features.
    for mx, my, mr, dark in inner.marks:
        _ellipse(canvas, proj([(mx, my, 0.1)])[0], (mr * unit, mr * unit), 0, _rgb(skin_c, dark))
    # Brows.
    for brow in (lm[17:22], lm[22:27]):
        _line(canvas, _smooth_curve(brow, 4), _rgb(inner.brow_color), inner.brow_thickness * unit)
    # Eyes: sclera clipped iris and pupil, lids.
    for eye, iris in ((lm[36:42], irises[0]), (lm[42:48], irises[1])):
        upper = _smooth_curve(eye[[0, 1, 2, 3]] if eye[0, 0] < eye[3, 0] else eye[[3, 2, 1, 0]], 5)
        outline = np.concatenate([_smooth_curve(eye[[0, 1, 2, 3]], 5), _smooth_curve(eye[[3, 4, 5, 0]], 5)])
        x0, y0 = np.floor(outline.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(outline.max(axis=0)).astype(int) + 3
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
        if x1 <= x0 or y1 <= y0:
            continue
        patch = canvas[y0:y1, x0:x1].copy()
        layer = patch.copy()
        off = np.array([x0, y0])
        _poly(layer, outline - off, (235, 232, 228))
        r = inner.iris_ratio * inner.eye_open * unit
        _ellipse(layer, iris - off, (r, r), 0, _rgb(inner.iris))
        _iris_texture(layer, iris - off, r, inner.id)
        _ellipse(layer, iris - off, (0.45 * r, 0.45 * r), 0, (15, 12, 12))
        _ellipse(layer, iris - off + np.array([-0.3 * r, -0.35 * r]), (0.18 * r, 0.18 * r), 0, (250, 250, 250))
        mask = np.zeros(patch.shape[:2], np.uint8)
        _poly(mask, outline - off, (255, 255, 255))
        a = mask[..., None].astype(np.float32) / 255
        canvas[y0:y1, x0:x1] = np.round(layer * a + patch * (1 - a)).astype(np.uint8)
        _line(canvas, upper, (25, 20, 20), 0.018 * unit)
        _line(canvas, _smooth_curve(eye[[3, 4, 5, 0]], 5), _rgb(skin_c, 0.6), 0.008 * unit)
    # Nose: shaded bridge, nostrils, base.
    bridge = lm[27:31] + np.array([0.035 * unit, 0])
    _line(canvas, bridge, _rgb(skin_c, 0.78), 0.02 * unit)
    for k in (32, 34):
        _ellipse(canvas, lm[k], (0.022 * unit, 0.012 * unit), np.degrees(pose.roll), _rgb(skin_c, 0.35))
    _line(canvas, _smooth_curve(lm[31:36], 4), _rgb(skin_c, 0.6), 0.012 * unit)
    # Mouth: lips, then the opening (dark, with teeth) or the lip line.
    _poly(canvas, _smooth_curve(np.concatenate([lm[48:60], lm[48:49]]), 4), _rgb(inner.lip_color))
    inner_mouth = np.concatenate([lm[60:65], lm[65:68], lm[60:61]])
    if pose.mouth > 0.05:
        _poly(canvas, _smooth_curve(inner_mouth, 4), (60, 15, 20))
        teeth = np.concatenate([lm[61:64], lm[63:60:-1] + np.array([0, 0.025 * unit])])
        _poly(canvas, teeth, (230, 225, 215))
    _line(canvas, _smooth_curve(lm[60:65], 4), _rgb(inner.lip_color, 0.45), 0.012 * unit)

    image = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    cover = cv2.resize(layers, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    out_pose = Pose(pose.cx, pose.cy, pose.scale, pose.roll, pose.yaw, pose.pitch, light_dir=pose.light_dir)
    image = shade(image, cover, context, inner, out_pose)
    # Global brightness drift, and the light's direction on the backdrop too.
    gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    image *= pose.light * (1 + 0.15 * pose.light_dir * gx)
    return np.clip(image, 0, 1), (lm / ss).astype(np.float32)


def _iris_texture(patch: np.ndarray, centre: np.ndarray, radius: float, seed: int) -> None:
    """Radial fibres and a dark limbal ring over the iris disc of ``patch`` (uint8, in place)."""
    h, w = patch.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - centre[0], yy - centre[1]
    r = np.hypot(dx, dy) / max(radius, 1e-3)
    theta = np.arctan2(dy, dx)
    rng = np.random.default_rng([seed, 79])
    fibres = sum(np.cos(k * theta + ph) for k, ph in zip(rng.integers(9, 40, 5), rng.uniform(0, 2 * np.pi, 5)))
    factor = (1 + 0.12 * fibres * np.clip(r, 0.3, 1)) * (1 - 0.45 * np.clip((r - 0.75) / 0.25, 0, 1))
    inside = r < 1.0
    patch[inside] = np.clip(patch[inside] * factor[inside, None], 0, 255).astype(np.uint8)


def camera(image: np.ndarray, rng: np.random.Generator, blur: float, noise: float) -> np.ndarray:
    """Lens softness (Gaussian sigma ``blur`` px) and sensor noise -> uint8.

    The noise is signal-dependent (shot noise plus read noise: std ``noise * sqrt(0.3 + 1.4 I)``
    in 0..255 units for intensity I in [0, 1], so ``noise`` at mid-grey), per channel, with two
    grains of equal std: a fine one (slightly correlated, as after demosaicing) and a blotchy one
    about 4 px across (a camera's denoising and sharpening leave such mid-frequency noise)."""
    out = image * 255
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    if noise > 0:
        grain = np.zeros(out.shape, np.float32)
        for sigma, weight in ((0.45, 1.0), (1.6, 1.0)):
            g = cv2.GaussianBlur(rng.standard_normal(out.shape, dtype=np.float32), (0, 0), sigma)
            grain += weight * g / max(float(g.std()), 1e-6)
        std = noise * np.sqrt(0.3 + 1.4 * np.clip(image, 0, 1))
        out = out + std * grain
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
