"""Incremental walks on fstmatch ResNets: the same values as full forwards of every masked image."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fstmatch.explain import _core, shapley
from fstmatch.explain._incremental import ResNetWalker, supports
from fstmatch.explain._utils import ValueFunction, fold_batchnorm
from fstmatch.models import create_model


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    """ResNet-18, width 8, with BatchNorm statistics far from identity (so folding matters)."""
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=3, width=8).eval()
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for t, lo, hi in ((m.running_mean, -0.2, 0.2), (m.running_var, 0.5, 2.0), (m.weight, 0.5, 1.5), (m.bias, -0.2, 0.2)):
                t.data.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)
    return model


def _walks_both_ways(model, size: int, grid: int, baseline: str, max_fraction: float, fold: bool):
    gen = torch.Generator().manual_seed(size + grid)
    x = torch.rand(2, 3, size, size, generator=gen)
    base = torch.zeros_like(x) if baseline == "zero" else x.mean((2, 3), keepdim=True).expand_as(x).clone()
    targets = torch.tensor([2, 0])
    with torch.inference_mode():
        fn = fold_batchnorm(model, x[:1]).to(memory_format=torch.channels_last) if fold else model
    orders = torch.stack([torch.randperm(grid * grid, generator=gen) for _ in range(3)])
    full = ValueFunction(fn, x, base, targets, grid, batch_size=50, input_dtype=None, channels_last=True)
    walker = ResNetWalker(fn, x, base, targets, grid, max_fraction=max_fraction, walks_per_batch=4)
    return walker, walker.walks(torch.tensor([1, 0]), orders), full.walks(torch.tensor([1, 0]), orders)


@pytest.mark.parametrize(
    ("size", "grid", "baseline", "max_fraction", "fold"),
    [(64, 4, "zero", 1.0, True), (96, 8, "mean", 1.0, True), (48, 3, "zero", 1.0, False), (112, 8, "zero", 0.5, True),
     (60, 5, "mean", 1.0, True)],
)
def test_incremental_walks_equal_full_forwards(resnet, size, grid, baseline, max_fraction, fold) -> None:
    walker, got, want = _walks_both_ways(resnet, size, grid, baseline, max_fraction, fold)
    assert walker.n_incremental >= 1
    assert got.shape == want.shape == (2, 3, grid * grid - 1)
    torch.testing.assert_close(got, want, atol=1e-5 * float(want.abs().max()), rtol=0)


def test_window_plan_for_the_paper_setting(resnet) -> None:
    """224 px, 16x16 grid: windows through layer2 (4 blocks), layer3 and layer4 in full."""
    x = torch.zeros(1, 3, 224, 224)
    walker = ResNetWalker(resnet, x, x, torch.tensor([0]), 16)
    assert walker.n_incremental == 4
    assert walker.stem[0].length == 10 and walker.block_windows[-1][1][0].length < 28


def test_shapley_uses_it_and_agrees_with_the_unoptimised_path(resnet, monkeypatch) -> None:
    used = []
    real = _core._incremental_walker

    def spy(*args, **kwargs):
        walker = real(*args, **kwargs)
        used.append(walker)
        return walker

    monkeypatch.setattr(_core, "_incremental_walker", spy)
    monkeypatch.setattr("fstmatch.explain._incremental.MAX_WINDOW_FRACTION", 1.0)
    monkeypatch.setattr("fstmatch.explain._incremental.MAX_STEP_COST", 1.0)
    monkeypatch.setattr("fstmatch.explain._incremental.MIN_FORWARD_MACS", 0)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    fast = shapley(resnet, images, [0, 1], grid=4, budget=6, seed=2, estimator="permutation")
    assert used and used[0] is not None
    plain = shapley(resnet, images, [0, 1], grid=4, budget=6, seed=2, optimize=False, estimator="permutation")
    torch.testing.assert_close(fast.values, plain.values, atol=1e-4 * float(plain.values.abs().max()), rtol=0)
    assert torch.equal(fast.n_forward, plain.n_forward)
    torch.testing.assert_close(fast.values.sum((1, 2)), fast.v_full - fast.v_empty, atol=1e-9, rtol=0)


def test_only_fstmatch_basic_block_resnets_on_cpu_in_float32(resnet, monkeypatch) -> None:
    small = torch.zeros(1, 3, 48, 48)
    # the demo's size (width 8, 48 px, 8x8 grid): too small to gain, so the batched path
    assert _core._incremental_walker(resnet, small, small, torch.tensor([0]), 8, None, 8) is None
    monkeypatch.setattr("fstmatch.explain._incremental.MIN_FORWARD_MACS", 0)
    assert supports(resnet)
    assert not supports(create_model("resnet50", num_classes=2, width=8))
    other = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert not supports(other)
    x = torch.rand(1, 3, 224, 224)
    args = (x, torch.zeros_like(x), torch.tensor([0]), 16)
    assert _core._incremental_walker(resnet, *args, None, 8).walks_per_batch == 8
    assert _core._incremental_walker(resnet, *args, torch.bfloat16, 8) is None  # a dtype copy: batched path
    assert _core._incremental_walker(other, *args, None, 8) is None
    # one cell = the whole image: the windows would cover the maps, so no walker
    assert _core._incremental_walker(resnet, x, torch.zeros_like(x), torch.tensor([0]), 1, None, 8) is None


def test_a_non_finite_logit_on_a_walk_step_is_named(resnet, monkeypatch) -> None:
    """NaN on a masked image met only inside an incremental walk: the same error as the batched path."""
    from fstmatch.explain._utils import ShapleyInputError

    monkeypatch.setattr("fstmatch.explain._incremental.MIN_FORWARD_MACS", 0)
    monkeypatch.setattr("fstmatch.explain._incremental.MAX_STEP_COST", 1.0)
    in_step = {"on": False}
    real_head, real_step = type(resnet).forward_head, ResNetWalker._step

    def head(self, f):  # NaN only while a walk step runs: v(empty), v(all) and the probes are finite
        out = real_head(self, f)
        return out * float("nan") if in_step["on"] else out

    def step(self, *args):
        in_step["on"] = True
        try:
            return real_step(self, *args)
        finally:
            in_step["on"] = False

    monkeypatch.setattr(type(resnet), "forward_head", head)
    monkeypatch.setattr(ResNetWalker, "_step", step)
    with pytest.raises(ShapleyInputError, match="non-finite target logit"):
        shapley(resnet, torch.rand(1, 3, 64, 64), [0], grid=4, budget=2, batch_size=1, estimator="permutation")
