"""Five-point alignment (SPEC §2): template, similarity fit, warping, coordinate maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fstmatch.data import align_face, alignment_matrix, fit_similarity, five_points, template_points
from fstmatch.data.align import apply_affine, crop_to_frame, frame_to_crop


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
    # the SPEC formula written out for the nose tip
    ratio = 80 / (224 * 0.34967)
    assert t[2, 0] == pytest.approx((-0.00182 * ratio + 0.5) * 224)
    assert t[2, 1] == pytest.approx((0.0357164 * ratio + 0.5) * 224 / ((-0.172844 * ratio + 0.5) * 2.42))
    # scale shrinks every point towards the canvas centre
    t9 = template_points(224, 80, scale=0.9)
    np.testing.assert_allclose(t9 - 112.0, 0.9 * (t - 112.0))
    # canvas and face width scale together
    np.testing.assert_allclose(template_points(448, 160, 1.0), 2 * t)


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
