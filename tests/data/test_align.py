"""Five-point alignment (docs/method.md §2): template, similarity fit, warping, coordinate maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fstmatch.data import align_face, alignment_matrix, fit_similarity, five_points, template_points
from fstmatch.data.align import (
    crop_to_frame,
    deepfakebench_template,
    frame_to_crop,
    get_convention,
)
from fstmatch.errors import UserError

from ._geometry import apply_affine


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]])


def _landmarks_from_five(points: np.ndarray) -> np.ndarray:
    """68 landmarks whose five alignment points are ``points`` (eyes: all six points on the centre)."""
    lm = np.zeros((68, 2))
    lm[36:42] = points[0]
    lm[42:48] = points[1]
    lm[30], lm[48], lm[54] = points[2], points[3], points[4]
    return lm


def test_template_matches_spec_formula_and_scale_definition():
    t = template_points(224, 80, scale=1.0)
    # eyes 80 px apart horizontally, eye row at canvas / 2.42
    assert t[1, 0] - t[0, 0] == pytest.approx(80.0, abs=1e-3)
    assert t[0, 1] == pytest.approx(224 / 2.42, abs=1e-6)
    # the reference formula (docs/method.md §2) written out for the nose tip
    ratio = 80 / (224 * 0.34967)
    assert t[2, 0] == pytest.approx((-0.00182 * ratio + 0.5) * 224)
    assert t[2, 1] == pytest.approx((0.0357164 * ratio + 0.5) * 224 / ((-0.172844 * ratio + 0.5) * 2.42))
    # canvas and face width scale together
    np.testing.assert_allclose(template_points(448, 160, 1.0), 2 * t)


def test_template_scale_is_applied_to_the_mean_face_as_the_reference_does():
    """Reference ``align_5p``: ``mf = MEAN_FACE * scale`` before placing it (issue 13). Values worked
    out by hand from the formula: ratio = 80 / (224 * 0.34967) = 1.0213713."""
    t1, t9 = template_points(224, 80, scale=1.0), template_points(224, 80, scale=0.9)
    # scale 1.0, nose tip: x = (-0.00182 r + 0.5) 224, y = (0.0357164 r + 0.5) 224 / ((-0.172844 r + 0.5) 2.42)
    np.testing.assert_allclose(t1[2], [111.58361, 153.51914], atol=1e-4)
    # scale 0.9: the normalised face times 0.9 first; the eye row stays at 224 / 2.42 = 92.5620
    np.testing.assert_allclose(t9[0], [75.74570, 92.56198], atol=1e-4)
    np.testing.assert_allclose(t9[2], [111.62525, 144.58417], atol=1e-4)
    np.testing.assert_allclose(t9[4], [141.84849, 185.42002], atol=1e-4)
    assert t9[1, 0] - t9[0, 0] == pytest.approx(72.0, abs=1e-3)  # face_width * scale
    # not a shrink about the canvas centre (the earlier, wrong reading)
    assert abs(t9[0, 1] - (112 + 0.9 * (t1[0, 1] - 112))) > 1.5


def test_deepfakebench_convention_template_and_points():
    """DeepfakeBench preprocess.py: ArcFace 112 template, x + 8, scaled to 256, margin scale 1.3."""
    t = get_convention("deepfakebench").template()
    # left eye by hand: ((30.2946 + 8) * 256 / 112 + 256 * 0.15) / 1.3 = (87.5305 + 38.4) / 1.3
    np.testing.assert_allclose(t[0], [96.86963, 120.43305], atol=1e-4)
    np.testing.assert_allclose(t[4], [153.89873, 191.65556], atol=1e-4)
    np.testing.assert_allclose(deepfakebench_template(256, 1.0)[1], [(65.5318 + 8) * 256 / 112, 51.5014 * 256 / 112])
    lm = np.arange(136, dtype=float).reshape(68, 2)
    np.testing.assert_allclose(get_convention("deepfakebench").points(lm), lm[[37, 44, 30, 49, 55]])
    with pytest.raises(UserError, match="face_width applies to the fstmatch alignment convention only"):
        alignment_matrix(lm, 256, 80, convention="deepfakebench")
    with pytest.raises(UserError, match="choose one of: fstmatch, deepfakebench"):
        get_convention("arcface")
    # a face drawn exactly on the template is mapped onto it
    five = apply_affine(_similarity(8, 1.9, 40, -7), t)
    lm = np.zeros((68, 2))
    lm[[37, 44, 30, 49, 55]] = five
    m = alignment_matrix(lm, convention="deepfakebench")
    np.testing.assert_allclose(apply_affine(m, five), t, atol=1e-9)
    assert align_face(np.zeros((400, 400, 3), np.uint8), lm, convention="deepfakebench").shape == (256, 256, 3)


@pytest.mark.parametrize("angle,scale,tx,ty", [(0, 1, 0, 0), (17, 1.7, -30, 12), (-40, 0.4, 100, -5)])
def test_fit_similarity_recovers_a_known_transform(angle, scale, tx, ty):
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, size=(5, 2))
    m = _similarity(angle, scale, tx, ty)
    np.testing.assert_allclose(fit_similarity(src, apply_affine(m, src)), m, atol=1e-9)


def test_fit_similarity_is_least_squares():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(5, 2))
    dst = apply_affine(_similarity(10, 1.2, 3, 4), src) + rng.normal(0, 2, size=(5, 2))
    m = fit_similarity(src, dst)
    best = np.sum((apply_affine(m, src) - dst) ** 2)
    a, b, tx, ty = m[0, 0], m[1, 0], m[0, 2], m[1, 2]
    for _ in range(100):  # no nearby similarity (a, b, tx, ty) does better
        da, db, dx, dy = rng.normal(0, [0.01, 0.01, 0.3, 0.3])
        near = np.array([[a + da, -(b + db), tx + dx], [b + db, a + da, ty + dy]])
        assert np.sum((apply_affine(near, src) - dst) ** 2) > best


def test_five_points_are_the_spec_means():
    lm = np.arange(136, dtype=float).reshape(68, 2)
    p = five_points(lm)
    np.testing.assert_allclose(p[0], lm[36:42].mean(0))
    np.testing.assert_allclose(p[1], lm[42:48].mean(0))
    np.testing.assert_allclose(p[2:], lm[[30, 48, 54]])


def test_align_face_puts_marked_eyes_on_the_template():
    """Dots drawn at the eye centres of a rotated, scaled face land on the template's eye positions."""
    canvas, face_width, scale = 224, 80, 0.9
    tmpl = template_points(canvas, face_width, scale)
    # the face in a 400x300 image: the template mapped by a known similarity
    to_image = _similarity(25, 1.6, 60, 20)
    five = apply_affine(to_image, tmpl)
    image = np.zeros((300, 400, 3), np.uint8)
    for (x, y), colour in zip(five[:2], [(255, 0, 0), (0, 255, 0)]):
        yy, xx = np.mgrid[0:300, 0:400]
        image[(xx - x) ** 2 + (yy - y) ** 2 <= 16] = colour
    aligned = align_face(image, _landmarks_from_five(five), canvas, face_width, scale)
    assert aligned.shape == (canvas, canvas, 3) and aligned.dtype == np.uint8
    for channel, (tx, ty) in zip((0, 1), tmpl[:2]):
        weights = aligned[..., channel].astype(float)
        yy, xx = np.mgrid[0:canvas, 0:canvas]
        centre = np.array([(xx * weights).sum(), (yy * weights).sum()]) / weights.sum()
        assert np.hypot(centre[0] - tx, centre[1] - ty) < 0.5


def test_alignment_matrix_maps_exact_template_faces_exactly():
    tmpl = template_points(112, 40, 1.0)
    five = apply_affine(_similarity(-12, 0.7, 5, 9), tmpl)
    m = alignment_matrix(_landmarks_from_five(five), canvas=112, face_width=40, scale=1.0)
    np.testing.assert_allclose(apply_affine(m, five), tmpl, atol=1e-9)


def test_crop_frame_maps_are_inverse_and_exact_at_native_resolution():
    pts = np.array([[10.0, 20.0], [55.5, 3.25]])
    box = [-12, 30, 88, 130]
    np.testing.assert_allclose(frame_to_crop(pts, box, 100), pts - [-12, 30])
    for size in (50, 100, 257):
        np.testing.assert_allclose(crop_to_frame(frame_to_crop(pts, box, size), box, size), pts)
    # a 2x downscaled crop: frame pixel centres 0 and 1 average into crop pixel 0 at 0.5 - 0.5 = 0
    np.testing.assert_allclose(frame_to_crop(np.array([[-11.5, 30.5]]), box, 50), [[0.0, 0.0]])
