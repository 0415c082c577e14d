"""Procedural identities and their 68-point face geometry.

An :class:`Identity` holds two groups of traits, drawn from a seeded generator:

- **inner face** (what a face swap moves): eye spacing/size/tilt, iris colour, brows, nose, mouth,
  lips, skin tone and marks (moles, freckles);
- **context** (what stays with the source video): head outline (jaw width, face length, chin),
  ears, hair, clothing, background.

Geometry lives in *face units*: x right, y down, z toward the camera, origin at the midpoint of
the eyes, 1 unit = the width of the face between jaw points 0 and 16. :func:`face_points` returns
the 68 landmarks in dlib's order (0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes, 48-67 mouth),
built from the context's head outline and the inner identity's features, and :func:`project`
maps them into frame pixels for a :class:`Pose`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Number of extra (non-landmark) points appended after the 68 landmarks: forehead arc, ears,
# iris centres, hairline and neck, all projected with the same pose as the landmarks.
FOREHEAD_POINTS = 15
#: Height of jaw points 0..8 (ear to chin) as a fraction of the eye-line-to-chin distance.
_JAW_HEIGHT = (0.0, 0.13, 0.29, 0.46, 0.62, 0.77, 0.9, 0.975, 1.0)
RGB = tuple[float, float, float]  # colour, each channel in [0, 1]


@dataclass(frozen=True)
class Identity:
    """Traits of one procedural person (face units; colours RGB in [0, 1])."""

    id: int
    # --- inner face
    skin: RGB
    eye_spacing: float  # distance between eye centres
    eye_width: float
    eye_open: float  # half-height of the open eye
    eye_tilt: float  # outer corner raised by this much
    iris: RGB
    iris_ratio: float  # iris radius / eye half-height
    brow_height: float  # above the eye line
    brow_arch: float
    brow_thickness: float
    brow_color: RGB
    nose_length: float
    nose_width: float
    mouth_y: float
    mouth_width: float
    lip_upper: float
    lip_lower: float
    lip_color: RGB
    smile: float  # mouth corners raised by this much
    marks: tuple[tuple[float, float, float, float], ...]  # moles, freckles: (x, y, radius, darkness)
    skin_detail: float  # strength of pores and mottling (1 = typical)
    gloss: float  # specular strength of the skin
    # --- context
    jaw_width: float  # horizontal scale of the head outline (1 = nominal)
    face_length: float  # eye line to chin
    chin_square: float  # 0 round .. 1 square jaw
    ear_size: float
    hair_color: RGB
    hair_top: float  # hairline height above the eye line
    hair_volume: float  # how far hair stands out of the head outline
    hair_long: float  # 0 short .. 1 shoulder-length
    cloth_color: RGB
    bg_top: RGB
    bg_bottom: RGB
    bg_shapes: tuple[tuple[float, ...], ...]  # (kind, x, y, w, h, r, g, b), frame fractions
    size: float  # face width as a fraction of the frame height (multiplies the preset's)


def _rgb(values: np.ndarray | tuple[float, ...]) -> RGB:
    """Three floats clipped to [0, 1]."""
    r, g, b = (float(v) for v in np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0))
    return r, g, b


def _color(rng: np.random.Generator, lo: float, hi: float) -> RGB:
    return _rgb(rng.uniform(lo, hi, 3))


def sample_identity(identity_id: int, rng: np.random.Generator) -> Identity:
    """Draw every trait of identity ``identity_id`` from ``rng`` (seeded by the caller)."""
    u = rng.uniform
    tone = u(0.25, 0.95)  # light .. dark skin along a warm axis
    skin = np.array([0.95 - 0.55 * tone, 0.80 - 0.55 * tone, 0.70 - 0.50 * tone]) + u(-0.03, 0.03, 3)
    iris_palette = [(0.25, 0.15, 0.07), (0.15, 0.35, 0.65), (0.25, 0.45, 0.25), (0.45, 0.35, 0.2), (0.3, 0.3, 0.35)]
    hair_palette = [(0.08, 0.06, 0.05), (0.3, 0.18, 0.08), (0.55, 0.4, 0.2), (0.75, 0.6, 0.35), (0.5, 0.2, 0.1),
                    (0.6, 0.6, 0.6)]
    hair = np.array(hair_palette[rng.integers(len(hair_palette))]) * u(0.85, 1.15)
    iris = np.array(iris_palette[rng.integers(len(iris_palette))]) * u(0.8, 1.2)
    marks = [(float(u(-0.35, 0.35)), float(u(0.1, 0.7)), float(u(0.008, 0.018)), float(u(0.4, 0.6)))
             for _ in range(int(rng.integers(0, 4)))]
    if rng.random() < 0.3:  # freckles over nose and cheeks
        marks += [(float(u(-0.3, 0.3)), float(u(0.15, 0.4)), float(u(0.004, 0.007)), float(u(0.75, 0.88)))
                  for _ in range(int(rng.integers(10, 30)))]
    shapes = []
    for _ in range(int(rng.integers(2, 6))):
        kind = float(rng.integers(0, 2))  # 0 rectangle, 1 ellipse
        shapes.append((kind, float(u(0, 1)), float(u(0, 1)), float(u(0.05, 0.4)), float(u(0.05, 0.4)),
                       *_color(rng, 0.1, 0.95)))
    bg = np.array(_color(rng, 0.15, 0.9))
    return Identity(
        id=identity_id,
        skin=_rgb(np.maximum(skin, 0.05)),
        eye_spacing=float(u(0.40, 0.48)),
        eye_width=float(u(0.17, 0.22)),
        eye_open=float(u(0.035, 0.055)),
        eye_tilt=float(u(-0.015, 0.025)),
        iris=_rgb(iris),
        iris_ratio=float(u(0.85, 1.15)),
        brow_height=float(u(0.10, 0.15)),
        brow_arch=float(u(0.0, 0.04)),
        brow_thickness=float(u(0.025, 0.045)),
        brow_color=_rgb(hair * u(0.6, 0.9)),
        nose_length=float(u(0.28, 0.36)),
        nose_width=float(u(0.16, 0.24)),
        mouth_y=float(u(0.50, 0.58)),
        mouth_width=float(u(0.30, 0.40)),
        lip_upper=float(u(0.025, 0.045)),
        lip_lower=float(u(0.03, 0.055)),
        lip_color=_rgb(np.array([0.70, 0.32, 0.33]) * u(0.8, 1.0, 3)),
        smile=float(u(-0.01, 0.03)),
        marks=tuple(marks),
        skin_detail=float(u(0.75, 1.3)),
        gloss=float(u(0.06, 0.22)),
        jaw_width=float(u(0.95, 1.05)),
        face_length=float(u(0.80, 0.92)),
        chin_square=float(u(0.0, 1.0)),
        ear_size=float(u(0.8, 1.2)),
        hair_color=_rgb(hair),
        hair_top=float(u(0.30, 0.42)),
        hair_volume=float(u(0.03, 0.12)),
        hair_long=float(u(0, 1)),
        cloth_color=_color(rng, 0.05, 0.95),
        bg_top=_rgb(bg),
        bg_bottom=_rgb(bg * u(0.5, 1.0)),
        bg_shapes=tuple(shapes),
        size=float(u(0.92, 1.08)),
    )


@dataclass(frozen=True)
class Pose:
    """Head pose and expression in one frame.

    ``cx, cy``: pixel position of the eye midpoint; ``scale``: pixels per face unit; angles in
    radians; ``blink`` 0 open .. 1 closed; ``mouth`` 0 closed .. 1 wide open; ``light`` overall
    brightness multiplier; ``light_dir`` horizontal component of the key light's direction
    (-1 from the left .. 1 from the right; see :mod:`fstmatch.synth.shading`).
    """

    cx: float
    cy: float
    scale: float
    roll: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    blink: float = 0.0
    mouth: float = 0.0
    light: float = 1.0
    light_dir: float = 0.0


def face_points(context: Identity, inner: Identity, blink: float, mouth: float) -> np.ndarray:
    """3D face-unit points ``(68 + extras, 3)``: head outline of ``context``, features of ``inner``.

    Extras (indices from 68): forehead arc (FOREHEAD_POINTS points from jaw point 16 over the top
    to jaw point 0), then ear centres (2), iris centres (2), chin-to-neck points (2).
    """
    pts = np.zeros((68, 3))
    w = 0.5 * context.jaw_width
    y0, length = 0.0, context.face_length
    sq = context.chin_square  # squarer jaws keep their width lower down before turning to the chin
    for i in range(17):
        # Height of jaw point i as a fraction of eye-line-to-chin, where dlib's annotation puts it
        # (fitted to dlib's 68-point predictor run on these drawings), then the outline's x there.
        g = float(np.interp(abs(i - 8), range(9), _JAW_HEIGHT[::-1]))
        sin_t = g ** (1.0 / (1.0 - 0.4 * sq))
        cos_t = np.sqrt(max(0.0, 1.0 - sin_t**2))
        x = -w * np.sign(8 - i) * cos_t ** (1.0 - 0.35 * sq)
        pts[i] = (x, y0 + (length - y0) * g, -0.2 * cos_t + 0.05 * sin_t)
    f = inner
    eo = f.eye_open * (1.0 - np.clip(blink, 0, 1))
    for side in (0, 1):
        sign = -1 if side == 0 else 1
        ex = sign * f.eye_spacing / 2
        hw = f.eye_width / 2
        outer_y = -f.eye_tilt
        ring = [  # left eye order: outer corner, upper lid (outer, inner), inner corner, lower lid
            (ex + sign * hw, outer_y, 0.05),
            (ex + sign * hw / 3, -eo - 0.004, 0.10),
            (ex - sign * hw / 3, -eo - 0.002, 0.10),
            (ex - sign * hw, 0.004, 0.08),
            (ex - sign * hw / 3, 0.7 * eo + 0.012, 0.10),
            (ex + sign * hw / 3, 0.7 * eo + 0.010, 0.10),
        ]
        if side == 0:
            pts[36:42] = ring
        else:
            # dlib right eye: 42 inner, 43-44 upper (inner->outer), 45 outer, 46-47 lower (outer->inner)
            pts[42], pts[43], pts[44], pts[45] = ring[3], ring[2], ring[1], ring[0]
            pts[46], pts[47] = ring[5], ring[4]
        # Brows: 17-21 outer->inner over the left eye, 22-26 inner->outer over the right eye.
        for k in range(5):
            t = k / 4  # 0 outer .. 1 inner
            bx = ex + sign * 0.65 * f.eye_width - sign * t * 1.2 * f.eye_width
            by = -f.brow_height - f.brow_arch * np.sin(np.pi * (0.35 + 0.65 * t)) + 0.01 * t
            idx = 17 + k if side == 0 else 26 - k
            pts[idx] = (bx, by, 0.12)
    nl = f.nose_length
    for k in range(4):
        pts[27 + k] = (0.0, 0.01 + (nl - 0.01) * k / 3, 0.15 + 0.06 * k)
    nw = f.nose_width
    for k in range(5):
        t = (k - 2) / 2  # -1 .. 1
        pts[31 + k] = (t * nw / 2, nl + 0.035 - 0.025 * abs(t), 0.2 + 0.05 * (1 - abs(t)))
    my, mw = f.mouth_y, f.mouth_width
    gap = 0.13 * np.clip(mouth, 0, 1)
    ul, ll, sm = f.lip_upper, f.lip_lower, f.smile
    up = [(-1 / 2, -sm), (-1 / 3, -0.8 * ul), (-1 / 8, -ul), (0, -0.8 * ul), (1 / 8, -ul), (1 / 3, -0.8 * ul),
          (1 / 2, -sm)]
    for k, (fx, dy) in enumerate(up):
        pts[48 + k] = (fx * mw, my + dy - 0.3 * gap * (k not in (0, 6)), 0.12 + 0.04 * (1 - 2 * abs(fx)))
    low = [(1 / 3, 0.8 * ll), (1 / 8, ll), (0, ll), (-1 / 8, ll), (-1 / 3, 0.8 * ll)]
    for k, (fx, dy) in enumerate(low):
        pts[55 + k] = (fx * mw, my + dy + 0.7 * gap, 0.12 + 0.04 * (1 - 2 * abs(fx)))
    inner_up = [(-0.42, -0.8 * sm), (-1 / 8, -0.3 * gap), (0, -0.3 * gap), (1 / 8, -0.3 * gap)]
    for k, (fx, dy) in enumerate(inner_up):
        pts[60 + k] = (fx * mw, my + dy + (0.002 if k else 0), 0.13)
    pts[64] = (0.42 * mw, my - 0.8 * sm, 0.13)
    for k, fx in enumerate((1 / 8, 0, -1 / 8)):
        pts[65 + k] = (fx * mw, my + 0.7 * gap + 0.002, 0.13)

    extras = []
    top = context.hair_top + 0.35  # top of the skull above the eye line
    for k in range(FOREHEAD_POINTS):
        t = np.pi * k / (FOREHEAD_POINTS - 1)  # from jaw point 16 (right) over the top to point 0
        extras.append((w * 1.02 * np.cos(t), y0 - (top + y0) * np.sin(t) ** 0.8, -0.2 * abs(np.cos(t))))
    for sign in (-1, 1):
        extras.append((sign * (w + 0.03 * context.ear_size), 0.16, -0.25))
    for sign in (-1, 1):
        extras.append((sign * f.eye_spacing / 2, 0.0, 0.11))
    extras.append((-0.25, length + 0.35, -0.1))
    extras.append((0.25, length + 0.35, -0.1))
    return np.concatenate([pts, np.array(extras)], axis=0)


def project(points: np.ndarray, pose: Pose) -> np.ndarray:
    """Face-unit 3D points ``(N, 3)`` -> frame pixels ``(N, 2)`` (orthographic, yaw/pitch/roll)."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    cy_, sy_ = np.cos(pose.yaw), np.sin(pose.yaw)
    x1 = x * cy_ + z * sy_
    z1 = -x * sy_ + z * cy_
    cp, sp = np.cos(pose.pitch), np.sin(pose.pitch)
    y1 = y * cp - z1 * sp
    cr, sr = np.cos(pose.roll), np.sin(pose.roll)
    px = pose.cx + pose.scale * (cr * x1 - sr * y1)
    py = pose.cy + pose.scale * (sr * x1 + cr * y1)
    return np.stack([px, py], axis=1)
