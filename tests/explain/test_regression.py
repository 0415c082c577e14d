"""Regression-family estimators (kernel, leverage, unbiased, spline): exact on games they fit exactly,
convergence to exact values within their standard errors, calibrated standard errors by replicates,
efficiency, forward counts and max_stderr stopping."""

from __future__ import annotations

import pytest
import torch

from fstmatch.explain import shapley
from fstmatch.explain._regression import kernel_size_weights, unbiased_constants

from .toys import CellGame

METHODS = ("kernel", "leverage", "unbiased", "spline")




@pytest.mark.parametrize("method", ["kernel", "leverage", "spline"])
def test_least_squares_methods_are_exact_on_additive_games(ones12, method) -> None:
    """A linear game lies in the regression's model: any sample that spans it recovers it exactly."""
    game = CellGame(3, n_classes=2, seed=2, pairs=False, products=False, maxes=False)
    exact = shapley(game, ones12, [0, 1], grid=3, estimator="exact")
    torch.testing.assert_close(exact.values[0].flatten(), game.a[0].double().detach(), atol=1e-5, rtol=0)
    res = shapley(game, ones12, [0, 1], grid=3, estimator=method, budget=8)
    torch.testing.assert_close(res.values, exact.values, atol=1e-5, rtol=0)
    assert res.stderr.max() < 1e-5


def test_unbiased_constants_match_the_kernel_expectation() -> None:
    """A = E_mu[z z'] by enumeration equals a I + c 11' with the closed-form a, c."""
    n = 6
    codes = torch.arange(1, 2**n - 1)
    z = ((codes.view(-1, 1) >> torch.arange(n)) & 1).double()
    s = z.sum(1).long()
    counts = torch.bincount(s, minlength=n + 1).double()
    mu = kernel_size_weights(n)[s] / counts[s]  # each coalition's probability
    A = torch.einsum("k,ki,kj->ij", mu, z, z)
    a, c = unbiased_constants(n)
    torch.testing.assert_close(A, a * torch.eye(n, dtype=torch.float64) + c, atol=1e-12, rtol=0)
    assert abs(float(torch.diagonal(A).mean()) - 0.5) < 1e-12


@pytest.mark.parametrize(("method", "m"), [("kernel", 300), ("leverage", 300), ("unbiased", 3000), ("spline", 300)])
def test_regression_converges_to_exact_within_stderr(game3, ones12, method, m) -> None:
    exact = shapley(game3, ones12, [0, 1], grid=3, estimator="exact")
    res = shapley(game3, ones12, [0, 1], grid=3, estimator=method, budget=m, seed=3)
    z = ((res.values - exact.values) / res.stderr).flatten()
    assert z.abs().max() < 4.5, z
    assert 0.2 < (z**2).mean() < 3.0, z
    assert (res.values - exact.values).abs().max() < 0.1 * exact.values.abs().max()


@pytest.mark.parametrize("method", METHODS)
def test_stderr_is_calibrated_over_replicates(game3, ones12, method) -> None:
    """Mean predicted sum(stderr^2) over 40 seeds against the observed mean squared error."""
    exact = shapley(game3, ones12, [0, 1], grid=3, estimator="exact")
    m = 40 if method != "unbiased" else 200
    err, pred = 0.0, 0.0
    for seed in range(40):
        r = shapley(game3, ones12, [0, 1], grid=3, estimator=method, budget=m, seed=seed)
        err += float(((r.values - exact.values) ** 2).sum())
        pred += float((r.stderr**2).sum())
    assert 0.7 < pred / err < 1.45, pred / err


@pytest.mark.parametrize("method", METHODS)
def test_efficiency_and_forward_counts(game3, method) -> None:
    images = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    res = shapley(game3, images, [1, 0], grid=3, estimator=method, budget=6, baselines="mean")
    torch.testing.assert_close(res.values.sum((1, 2)), res.v_full - res.v_empty, atol=1e-9, rtol=0)
    assert res.n_forward.tolist() == [2 + 6 * 8] * 2  # 24 complementary pairs = 6 orderings' worth
    assert res.n_permutations.tolist() == [6, 6]
    assert res.method == method


@pytest.mark.parametrize("method", METHODS)
def test_batching_and_other_images_do_not_change_results(game3, method) -> None:
    images = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    runs = [shapley(game3, images, [0, 1, 0], grid=3, estimator=method, budget=6, batch_size=b) for b in (1, 7, 1000)]
    for r in runs[1:]:
        torch.testing.assert_close(r.values, runs[0].values, atol=1e-6, rtol=0)
    alone = shapley(game3, images[2:], [0], grid=3, estimator=method, budget=6)
    torch.testing.assert_close(alone.values, runs[0].values[2:], atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", METHODS)
def test_max_stderr_stops_each_image(game3, method) -> None:
    images = torch.ones(2, 3, 12, 12)
    images[1, :, :4] = 0.0
    cap = 4000
    target = 0.05 if method != "unbiased" else 0.2
    res = shapley(game3, images, [0, 0], grid=3, estimator=method, budget=cap, max_stderr=target, seed=4)
    assert (res.n_permutations < cap).all()
    assert (res.stderr.flatten(1).amax(1) < target).all()
    capped = shapley(game3, images, [0, 0], grid=3, estimator=method, budget=32, max_stderr=1e-9)
    assert capped.n_forward.tolist() == [2 + 32 * 8] * 2


def test_auto_was_removed_with_a_clear_error(game3, ones12) -> None:
    from fstmatch.explain import ShapleyInputError

    with pytest.raises(ShapleyInputError, match=r"'auto' was removed.*use 'spline'"):
        shapley(game3, ones12, [0, 1], grid=3, estimator="auto")



@pytest.mark.parametrize("method", METHODS)
def test_one_cell_is_its_own_gap(method) -> None:
    game = CellGame(1, n_classes=2, seed=1)
    images = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    res = shapley(game, images, [0, 1], grid=1, estimator=method, budget=16)
    torch.testing.assert_close(res.values.flatten(), res.v_full - res.v_empty, atol=1e-9, rtol=0)
