"""Cross-check against captum (test-only dependency) on a small CNN, cells as captum feature groups."""

from __future__ import annotations

import pytest
import torch

from fstmatch.explain import shapley

from .toys import small_cnn

captum_attr = pytest.importorskip("captum.attr")


def _cell_mask(grid: int, size: int) -> torch.Tensor:
    """captum feature_mask (1, 1, H, W): the row-major cell index of each pixel."""
    cell = size // grid
    ids = torch.arange(grid * grid).view(grid, grid)
    return ids.repeat_interleave(cell, 0).repeat_interleave(cell, 1).view(1, 1, size, size)


def _captum_cells(attr: torch.Tensor, grid: int, size: int) -> torch.Tensor:
    """Per-pixel captum attributions (N, C, H, W) -> per-cell values (N, G, G)."""
    cell = size // grid
    return attr[:, 0, ::cell, ::cell].double()


def test_exact_matches_captum_shapley_values() -> None:
    """captum.attr.ShapleyValues enumerates all 4! orderings of a 2x2 grid: identical values."""
    net = small_cnn(seed=4)
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([2, 0])
    ours = shapley(net, images, targets, grid=2, estimator="exact", optimize=False)
    mask = _cell_mask(2, 8)
    theirs = captum_attr.ShapleyValues(net).attribute(images, baselines=0.0, target=targets, feature_mask=mask)
    torch.testing.assert_close(ours.values, _captum_cells(theirs, 2, 8), atol=1e-5, rtol=1e-4)


def test_permutation_and_captum_sampling_agree_with_exact() -> None:
    """3x3 grid: captum's ShapleyValueSampling and our walk both converge to our exact values."""
    net = small_cnn(seed=5)
    images = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    exact = shapley(net, images, [1], grid=3, estimator="exact")
    ours = shapley(net, images, [1], grid=3, budget=200, seed=0)
    torch.manual_seed(0)
    sampled = captum_attr.ShapleyValueSampling(net).attribute(
        images, baselines=0.0, target=1, feature_mask=_cell_mask(3, 12), n_samples=200
    )
    theirs = _captum_cells(sampled, 3, 12)
    scale = exact.values.abs().max()
    for est in (ours.values, theirs):
        assert (est - exact.values).abs().max() < 0.03 * scale
        cos = (est.flatten() @ exact.values.flatten()) / (est.norm() * exact.values.norm())
        assert cos > 0.999
    # both obey efficiency, so their sums agree with exact's
    torch.testing.assert_close(theirs.sum(), exact.values.sum(), atol=1e-4 * float(scale), rtol=0)
