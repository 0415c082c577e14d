"""Hypothesis metrics on hand-made maps with values worked out by hand (docs/method.md §4, §8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fstmatch.hypotheses import (
    THRESHOLDS,
    pool_to_grid,
    q_curve,
    q_metric,
    q_per_image,
    region_fractions,
    stability,
    stability_per_image,
    top_mask,
    truth_score,
    truth_shares,
    union_mask,
    unit_normalise,
)
from fstmatch.hypotheses.metrics import as_maps

# A 2x2 example. Unit maps: s = [[1, 0], [0, 0]], t = [[0, .6], [.8, 0]] -> u = [[1, .6], [.8, 0]];
# relu(u) sorted = [0, .6, .8, 1]. d = [[1, 2], [2, 4]] / 5 = [[.2, .4], [.4, .8]].
S = np.array([[3.0, 0.0], [0.0, 0.0]])
T = np.array([[0.0, 0.6], [0.8, 0.0]])
D = np.array([[1.0, 2.0], [2.0, 4.0]])


def test_default_thresholds_are_the_references_eight() -> None:
    assert THRESHOLDS == (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_unit_normalise_scales_each_map_and_keeps_zero_maps() -> None:
    out = unit_normalise(np.stack([D, np.zeros((2, 2))]))
    np.testing.assert_allclose(out[0], D / 5)
    assert np.all(out[1] == 0)


def test_union_mask_follows_the_reference_rule() -> None:
    # t = 0.5: tau = sorted[floor(4 * 0.5) = 2] = 0.8 -> only the cell with u = 1 is above it.
    np.testing.assert_array_equal(union_mask(S, T, 0.5)[0], [[True, False], [False, False]])
    # t = 0.25: tau = sorted[1] = 0.6 -> cells with u = 1 and u = 0.8.
    np.testing.assert_array_equal(union_mask(S, T, 0.25)[0], [[True, False], [True, False]])


def test_q_curve_exact_values() -> None:
    curve = q_curve(S, T, D, thresholds=(0.25, 0.5))
    # t = 0.5:  (.4 + .4 + .8 - .2) / 4 = 0.35;  t = 0.25: (.4 + .8 - .2 - .4) / 4 = 0.15
    assert curve == pytest.approx({0.25: 0.15, 0.5: 0.35})
    assert q_metric(S, T, D, thresholds=(0.25, 0.5)) == pytest.approx(0.25)


def test_q_metric_default_thresholds_on_a_ranked_union() -> None:
    # 16 cells with distinct union values 1..16: at threshold t the mask keeps 15 - floor(16 t) cells:
    # 6, 5, 4, 3, 3, 2, 1, 0 for the eight defaults (mean 3). A uniform detector map (0.25 per cell):
    # Q_t = 0.25 (16 - 2|U|) / 16, so Q = 0.25 * (16 - 6) / 16.
    s = np.arange(1, 17, dtype=float).reshape(4, 4)
    t = np.zeros((4, 4))
    d = np.ones((4, 4))
    sizes = [int(union_mask(s, t, th).sum()) for th in THRESHOLDS]
    assert sizes == [6, 5, 4, 3, 3, 2, 1, 0]
    assert q_metric(s, t, d) == pytest.approx(0.15625)
    assert q_curve(s, t, d)[0.6] == pytest.approx(0.0625)


def test_ties_at_tau_and_non_positive_cells_are_outside_the_union() -> None:
    # All union cells negative: relu is all zero, tau = 0, nothing is > 0 -> U empty, Q = sum(d) / G^2.
    neg = -np.ones((2, 2))
    assert not union_mask(neg, neg, 0.6).any()
    assert q_metric(neg, neg, D) == pytest.approx((0.2 + 0.4 + 0.4 + 0.8) / 4)
    # Ties: four equal cells -> tau equals them -> none kept.
    assert not top_mask(np.ones((1, 2, 2)), 0.5).any()


def test_q_averages_over_images_and_accepts_torch() -> None:
    s2 = np.stack([S, S])
    t2 = np.stack([T, T])
    d2 = np.stack([D, -D])  # the second detector map is the negation: Q_t flips sign
    per_image = q_per_image(torch.tensor(s2), torch.tensor(t2), torch.tensor(d2), (0.25, 0.5))
    np.testing.assert_allclose(per_image, [[0.15, 0.35], [-0.15, -0.35]])
    assert q_metric(s2, t2, d2, (0.25, 0.5)) == pytest.approx(0.0)


def test_q_rejects_bad_shapes_and_thresholds() -> None:
    with pytest.raises(ValueError, match="same shape"):
        q_metric(S, T, np.ones((3, 3)))
    with pytest.raises(ValueError, match="threshold"):
        q_metric(S, T, D, thresholds=(1.0,))
    with pytest.raises(ValueError, match="shape"):
        as_maps(np.ones((2, 3)))


def test_stability_is_mean_cosine_with_c23_and_c40() -> None:
    raw = np.array([[2.0, 0.0], [0.0, 0.0]])
    c23 = np.array([[1.0, 1.0], [0.0, 0.0]])  # cosine with raw: 1/sqrt(2)
    c40 = np.array([[0.0, 1.0], [0.0, 0.0]])  # cosine 0
    assert stability(raw, c23, c40) == pytest.approx(1 / (2 * math.sqrt(2)))
    assert stability(raw, 5 * raw, 0.1 * raw) == pytest.approx(1.0)
    per = stability_per_image(np.stack([raw, raw]), np.stack([c23, raw]), np.stack([c40, -raw]))
    np.testing.assert_allclose(per, [1 / (2 * math.sqrt(2)), 0.0], atol=1e-12)


def test_pool_to_grid_divisible_and_not() -> None:
    m = np.zeros((4, 4))
    m[0, 2] = 1  # one pixel of the top-right 2x2 cell
    np.testing.assert_allclose(pool_to_grid(m, 2)[0], [[0, 0.25], [0, 0]])
    m5 = np.arange(25, dtype=float).reshape(5, 5)  # rows/cols split [0:2], [2:5]
    out = pool_to_grid(m5, 2)[0]
    assert out[0, 0] == pytest.approx(m5[:2, :2].mean())
    assert out[1, 1] == pytest.approx(m5[2:, 2:].mean())


def _masks() -> np.ndarray:
    masks = np.zeros((1, 2, 4, 4))
    masks[0, 0, :2, :2] = 1  # donor: the top-left cell
    masks[0, 1, 0, 2] = 1  # trace: one pixel of the top-right cell
    return masks


def test_region_fractions() -> None:
    f = region_fractions(_masks(), 2)
    np.testing.assert_allclose(f["donor"][0], [[1, 0], [0, 0]])
    np.testing.assert_allclose(f["trace"][0], [[0, 0.25], [0, 0]])
    np.testing.assert_allclose(f["rest"][0], [[0, 0.75], [1, 1]])


def test_truth_score_exact_values() -> None:
    f = region_fractions(_masks(), 2)
    phi = np.array([[2.0, 1.0], [1.0, -5.0]])  # positive mass 4
    donor = truth_score(phi, f["donor"])
    assert donor == pytest.approx({"share": 0.5, "expected": 0.25, "lift": 2.0, "n": 1, "skipped": 0})
    trace = truth_score(phi, f["trace"])
    assert trace["share"] == pytest.approx(0.0625) and trace["lift"] == pytest.approx(1.0)
    rest = truth_score(phi, f["rest"])
    assert rest["share"] == pytest.approx(1.75 / 4) and rest["expected"] == pytest.approx(2.75 / 4)


def test_truth_skips_maps_without_positive_mass_and_empty_regions() -> None:
    f = region_fractions(np.concatenate([_masks(), np.zeros((1, 2, 4, 4))]), 2)
    phi = np.stack([-np.ones((2, 2)), np.ones((2, 2))])
    share, _, valid = truth_shares(phi, f["donor"])
    assert not valid.any() and np.isnan(share).all()  # image 0: no positive mass; image 1: no donor
    out = truth_score(phi, f["donor"])
    assert out["n"] == 0 and out["skipped"] == 2 and math.isnan(out["lift"])
