"""Photometric shading of a drawn face: a 3-D head shape, skin and hair detail, light.

The vector drawing (:mod:`fstmatch.synth.render`) gives each pixel a base colour (albedo) and its
layer (head skin, inner face, hair). This module turns it into a lit photograph, at the output
size, vectorised:

- **shape**: the head is an ellipsoid (the *context*'s proportions) with bumps of the *inner*
  face (nose ridge and tip, nostril wings, eye sockets, brow ridge, cheekbones, lips, chin) and a
  fine pore relief. Each pixel is ray-cast (orthographic, the landmarks' :func:`project` pose)
  onto the ellipsoid, which gives its face-unit coordinates (so textures stick to the skin when the
  head turns) and the depth whose gradient gives the normals;
- **skin albedo**: pores (band-passed noise at 1-3 texels), fine variation (4 texels), mottling
  and redness at coarser scales,
  fixed per identity in face units; inside the inner-face region they are the inner identity's
  (a swap moves them), elsewhere the context's;
- **hair**: strand texture (noise stretched along the hair's flow) and a sheen band;
- **light**: ambient + Lambert + Blinn-Phong specular (skin gloss per identity) from a direction
  per video (``Pose.light_dir``: left-right), a soft cast shadow (the nose's, mostly) from a
  depth-shifted occlusion test and ambient occlusion from the depth's local concavity.

Units: face units as :mod:`fstmatch.synth.face` (1 = jaw width), pixels of the output frame.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from fstmatch.synth.face import Identity, Pose

_TEXEL = 1.0 / 160  # texture resolution, face units per texel
_SKIN_BOX = (-0.8, -0.95, 0.8, 1.35)  # x0, y0, x1, y1 of the skin texture, face units
_HAIR_BOX = (-1.3, -1.3, 1.3, 1.8)


def rotation(pose: Pose) -> np.ndarray:
    """3x3 matrix taking face-unit points to camera axes (x right, y down, z toward the camera),
    the same yaw -> pitch -> roll as :func:`fstmatch.synth.face.project`."""
    cy, sy = np.cos(pose.yaw), np.sin(pose.yaw)
    cp, sp = np.cos(pose.pitch), np.sin(pose.pitch)
    cr, sr = np.cos(pose.roll), np.sin(pose.roll)
    yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return roll @ pitch @ yaw


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """White noise smoothed by a Gaussian of ``sigma`` texels, rescaled to unit std."""
    n = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    return n / max(float(n.std()), 1e-6)


def _grid(box: tuple[float, float, float, float]) -> tuple[int, int]:
    x0, y0, x1, y1 = box
    return round((y1 - y0) / _TEXEL), round((x1 - x0) / _TEXEL)


@lru_cache(maxsize=64)
def skin_texture(person: Identity) -> np.ndarray:
    """float32 (rows, cols, 4) over ``_SKIN_BOX``: albedo factors R, G, B (about 1) and the pore
    relief (face units), fixed per identity."""
    rng = np.random.default_rng([person.id, 77, int(person.skin[0] * 1e6)])
    shape = _grid(_SKIN_BOX)
    pores = _noise(rng, shape, 0.8) - 0.6 * _noise(rng, shape, 2.5)  # band-passed: 1-3 texels
    pores /= max(float(pores.std()), 1e-6)
    fine = _noise(rng, shape, 4.0)
    mottle = _noise(rng, shape, 10.0)
    redness = _noise(rng, shape, 18.0)
    grain = person.skin_detail
    lum = 1 + grain * (0.04 * pores + 0.035 * fine + 0.045 * mottle)
    tex = np.stack([lum * (1 + 0.03 * redness), lum * (1 - 0.015 * redness), lum * (1 - 0.01 * redness),
                    -grain * 0.0009 * np.clip(pores, -3, 1.5)], axis=-1)  # pores are pits
    tex.flags.writeable = False
    return tex.astype(np.float32)


@lru_cache(maxsize=64)
def hair_texture(person: Identity) -> np.ndarray:
    """float32 (rows, cols) over ``_HAIR_BOX``: strand luminance factor (about 1), fixed per identity."""
    rng = np.random.default_rng([person.id, 78, int(person.hair_color[0] * 1e6)])
    shape = _grid(_HAIR_BOX)
    white = rng.standard_normal(shape).astype(np.float32)
    strands = cv2.GaussianBlur(white, (0, 0), sigmaX=0.7, sigmaY=9.0)  # long along y, thin across
    strands /= max(float(strands.std()), 1e-6)
    clumps = _noise(rng, shape, 6.0)
    tex = 1 + 0.16 * strands + 0.08 * clumps
    tex.flags.writeable = False
    return tex


def _lookup(tex: np.ndarray, box: tuple[float, float, float, float], fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Bilinear sample of ``tex`` at face-unit coordinates (fx, fy) (edges clamped)."""
    mx = ((fx - box[0]) / _TEXEL).astype(np.float32)
    my = ((fy - box[1]) / _TEXEL).astype(np.float32)
    return cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _bumps(inner: Identity, context: Identity, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Height (face units, toward the camera) of the inner face's relief at face coords (fx, fy)."""
    def g(x: np.ndarray | float, y: np.ndarray | float, sx: float, sy: float) -> np.ndarray:
        return np.exp(-((x / sx) ** 2) - ((y / sy) ** 2))

    ax = np.abs(fx)
    nl, nw, es = inner.nose_length, inner.nose_width, inner.eye_spacing
    t = np.clip(fy / nl, 0, 1)
    ridge = 0.10 * t**0.7 * np.exp(-((fx / (0.03 + 0.05 * t)) ** 2)) * np.clip((nl + 0.04 - fy) / 0.04, 0, 1)
    ridge *= np.clip((fy + 0.03) / 0.05, 0, 1)
    h = ridge + 0.045 * g(fx, fy - nl + 0.015, 0.055, 0.045) + 0.025 * g(ax - 0.4 * nw, fy - nl + 0.01, 0.035, 0.03)
    h -= 0.055 * g(ax - es / 2, fy + 0.005, 0.11, 0.07)
    h += 0.022 * g(ax - es / 2, fy + inner.brow_height, 0.14, 0.035)
    h += 0.035 * g(ax - 0.27, fy - 0.25, 0.1, 0.09)
    h += 0.022 * g(fx, fy - inner.mouth_y, 0.45 * inner.mouth_width, 0.045)
    h -= 0.012 * g(fx, fy - inner.mouth_y - 0.085, 0.12, 0.025)
    h += 0.03 * g(fx, fy - context.face_length + 0.08, 0.12, 0.07)
    return h


def shade(image: np.ndarray, layers: np.ndarray, context: Identity, inner: Identity, pose: Pose) -> np.ndarray:
    """Light the drawn frame.

    Args:
        image: float32 (H, W, 3) base colours in [0, 1] (the drawing).
        layers: float32 (H, W, 3) coverage in [0, 1]: head skin (with features), inner face, hair.
        context, inner: identities (head shape and context texture; relief and inner texture).
        pose: the frame's pose in output pixels.

    Returns:
        float32 (H, W, 3), the lit image (not clipped).
    """
    h, w = image.shape[:2]
    skin_cov, inner_cov, hair_cov = layers[..., 0], layers[..., 1], layers[..., 2]
    cov = np.maximum(skin_cov, hair_cov)
    ys, xs = np.nonzero(cov > 0.002)
    if len(ys) == 0:
        return image
    pad = 3
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, h)
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, w)
    s = pose.scale
    rot = rotation(pose).astype(np.float32)
    uu, vv = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    cam_x, cam_y = (uu - np.float32(pose.cx)) / np.float32(s), (vv - np.float32(pose.cy)) / np.float32(s)
    # Ray-cast the head ellipsoid: p = R^T (X, Y, Z) for the front-most Z.
    top = context.hair_top + 0.35
    centre = np.array([0.0, 0.5 * (context.face_length - top), -0.28], np.float32)
    axes = np.array([0.5 * context.jaw_width * 1.1, 0.5 * (context.face_length + top) * 1.08, 0.5], np.float32)
    rt = rot.T
    p0 = rt[:, 0, None, None] * cam_x + rt[:, 1, None, None] * cam_y - centre[:, None, None]
    d = rt[:, 2] / axes
    q = p0 / axes[:, None, None]
    qa = float(d @ d)
    qb = 2 * np.einsum("i,ijk->jk", d, q)
    qc = np.einsum("ijk,ijk->jk", q, q) - 1
    disc = qb * qb - 4 * qa * qc
    z = (-qb + np.sqrt(np.maximum(disc, 0))) / (2 * qa)
    p = p0 + rt[:, 2, None, None] * z + centre[:, None, None]
    # In-plane face coordinates (depth ignored): the neck, hair and anything off the ellipsoid.
    hx = rt[0, 0] * cam_x + rt[0, 1] * cam_y
    hy = rt[1, 0] * cam_x + rt[1, 1] * cam_y
    on_head = np.clip(disc / (0.3 * qa), 0, 1)  # 1 inside the ellipsoid's outline, 0 off it
    fx = p[0] * on_head + hx * (1 - on_head)
    fy = p[1] * on_head + hy * (1 - on_head)
    skin_tex = _lookup(skin_texture(inner), _SKIN_BOX, fx, fy)
    if inner is not context:
        ctx_tex = _lookup(skin_texture(context), _SKIN_BOX, fx, fy)
        m = inner_cov[y0:y1, x0:x1, None]
        skin_tex = skin_tex * m + ctx_tex * (1 - m)
    relief = _bumps(inner, context, fx, fy) * inner_cov[y0:y1, x0:x1] + skin_tex[..., 3]
    depth = (z + relief) * s  # pixels
    dzdy, dzdx = np.gradient(depth)
    dzdx, dzdy = dzdx * on_head, dzdy * on_head + 0.35 * (1 - on_head)  # off the head: the neck, facing down
    normal = np.stack([-dzdx, -dzdy, np.ones_like(depth)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = np.array([np.clip(pose.light_dir, -0.9, 0.9), -0.45, 1.0])
    light /= np.linalg.norm(light)
    lambert = np.clip(normal @ light, 0, 1)
    # Soft cast shadow: a point is shadowed where the surface a few pixels toward the light rises
    # above the ray to the light (nose and brow shadows).
    step = 0.06 * s
    lx, ly = light[0] / np.hypot(light[0], light[1]), light[1] / np.hypot(light[0], light[1])
    shifted = cv2.warpAffine(depth.astype(np.float32), np.float32([[1, 0, step * lx], [0, 1, step * ly]]),
                             (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    rise = shifted - depth - step * light[2] / np.hypot(light[0], light[1])
    shadow = 1 - 0.6 * np.clip(rise / (0.02 * s), 0, 1)
    shadow = cv2.GaussianBlur(shadow.astype(np.float32), (0, 0), max(0.6, 0.012 * s))
    relief_px = relief * s
    concave = cv2.GaussianBlur(relief_px.astype(np.float32), (0, 0), max(1.0, 0.05 * s)) - relief_px
    occlusion = np.clip(1 - 0.5 * concave / (0.02 * s), 0.6, 1.0)
    half = light + np.array([0, 0, 1.0])
    half /= np.linalg.norm(half)
    spec = np.clip(normal @ half, 0, 1) ** 30 * inner.gloss * shadow
    diffuse = (0.5 * occlusion + 0.7 * lambert * shadow)[..., None]
    region = image[y0:y1, x0:x1]
    skin_lit = region * skin_tex[..., :3] * diffuse + spec[..., None] * np.array([1.0, 0.97, 0.93])
    # Hair: strands and a sheen band across the crown, lit by the ellipsoid's normal only.
    strands = _lookup(hair_texture(context), _HAIR_BOX, hx, hy)
    sheen = 0.12 * np.exp(-(((hy + 0.5 * top) / 0.08) ** 2)) * strands
    hair_lit = region * (strands * (0.5 + 0.55 * lambert))[..., None] + sheen[..., None]
    sk = skin_cov[y0:y1, x0:x1, None]
    hc = hair_cov[y0:y1, x0:x1, None]
    out = image.copy()
    out[y0:y1, x0:x1] = region * (1 - sk - hc).clip(0, 1) + skin_lit * sk + hair_lit * hc
    return out
