"""method='exact' against closed-form Shapley values of hand-weighted games, and the baselines."""

from __future__ import annotations

import math

import pytest
import torch

from fstmatch.explain import make_baseline, shapley

from .toys import CellGame


@pytest.mark.parametrize("grid", [2, 3])
def test_exact_equals_closed_form_on_every_kind_of_term(grid: int) -> None:
    game = CellGame(grid, n_classes=3, seed=grid)
    images = torch.ones(3, 3, 4 * grid, 4 * grid)
    res = shapley(game, images, [0, 1, 2], grid=grid, estimator="exact")
    for k in range(3):
        expected = game.closed_form(k).view(grid, grid)
        torch.testing.assert_close(res.values[k], expected, atol=1e-5, rtol=0)
    assert res.values.shape == (3, grid, grid) and res.values.dtype == torch.float64
    assert torch.equal(res.stderr, torch.zeros_like(res.values))
    assert res.n_forward.tolist() == [2 ** (grid * grid)] * 3
    # efficiency
    torch.testing.assert_close(res.values.sum((1, 2)), res.v_full - res.v_empty, atol=1e-9, rtol=0)


def test_exact_single_terms() -> None:
    """Pure games: pairwise interaction split equally; unanimity and max games 1/|T| on their sets."""
    pair = CellGame(2, n_classes=1, linear=False, products=False, maxes=False)
    with torch.no_grad():
        pair.b.zero_()
        pair.b[0, 0, 3] = 2.0
    res = shapley(pair, torch.ones(1, 3, 8, 8), 0, grid=2, estimator="exact")
    torch.testing.assert_close(res.values[0].flatten(), torch.tensor([1.0, 0, 0, 1.0], dtype=torch.float64))

    maxg = CellGame(2, n_classes=1, linear=False, pairs=False, products=False)
    maxg.m_sets = [torch.tensor([1, 2])]
    with torch.no_grad():
        maxg.w.fill_(3.0)
    res = shapley(maxg, torch.ones(1, 3, 8, 8), 0, grid=2, estimator="exact")
    torch.testing.assert_close(res.values[0].flatten(), torch.tensor([0, 1.5, 1.5, 0], dtype=torch.float64))


@pytest.mark.parametrize("baseline", ["zero", "mean", "blur", 0.25, "tensor"])
def test_additive_model_values_are_weight_times_cell_difference(baseline) -> None:
    """For logit = a . z(x) the value of cell i is a_i (z_i(x) - z_i(baseline)), for any baseline."""
    game = CellGame(3, n_classes=2, seed=5, pairs=False, products=False, maxes=False)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 12, 12, generator=gen)
    if baseline == "tensor":
        baseline = torch.rand(3, 1, 1, generator=gen)
    res = shapley(game, images, [1, 0], grid=3, estimator="exact", baselines=baseline)
    base = make_baseline(baseline, images, (4, 4))
    with torch.no_grad():
        dz = (game.features(images) - game.features(base)).double()
    for n, k in enumerate([1, 0]):
        torch.testing.assert_close(res.values[n].flatten(), game.a[k].double().detach() * dz[n], atol=1e-5, rtol=0)


def test_baselines_have_the_documented_content() -> None:
    images = torch.rand(2, 3, 16, 16)
    assert torch.equal(make_baseline("zero", images, (4, 4)), torch.zeros_like(images))
    mean = make_baseline("mean", images, (4, 4))
    torch.testing.assert_close(mean[:, :, 5, 7], images.mean((2, 3)))
    blur = make_baseline("blur", images, (4, 4))
    assert blur.shape == images.shape
    # a blur keeps the mean roughly and removes most pixel-level variance
    assert blur.std() < 0.5 * images.std()
    const = torch.full((1, 3, 16, 16), 0.5)
    torch.testing.assert_close(make_baseline("blur", const, (4, 4)), const)


def test_normalized_maps_have_unit_norm() -> None:
    game = CellGame(2, n_classes=2, seed=3)
    res = shapley(game, torch.ones(2, 3, 8, 8), [0, 1], grid=2, estimator="exact")
    unit = res.normalized()
    torch.testing.assert_close(unit.flatten(1).norm(dim=1), torch.ones(2, dtype=torch.float64))
    cos = (unit[0] * res.values[0]).sum() / res.values[0].norm()
    assert math.isclose(float(cos), 1.0, rel_tol=1e-12)
