"""The explainers beside the Shapley engine (``fstmatch.explain.attribution``) on tiny models with
hand-set weights, where the exact maps are known; shapes, the Grad-CAM layer rule, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from fstmatch.errors import UserError
from fstmatch.explain.attribution import (
    EXPLAINERS,
    attribute,
    cells_to_pixels,
    choose_cam_layer,
    list_explainers,
    pixels_to_cells,
)
from fstmatch.models import create_model

pytest.importorskip("captum")


class Linear(nn.Module):
    """logit_k = Σ_{c,h,w} W[k, c, h, w]·x[c, h, w]: no bias, so f(black) = 0."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("nchw,kchw->nk", x, self.weight)


class CellSquares(nn.Module):
    """logit_1 = Σ_cells (mean of the cell's pixels)², logit_0 = −logit_1: additive over cells,
    non-linear inside them, so occlusion of a cell takes exactly its term away."""

    def __init__(self, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        terms = nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), self.grid) ** 2
        z = terms.flatten(1).sum(1)
        return torch.stack([-z, z], 1)


class RedCam(nn.Module):
    """conv (1x1, weights (1, 0, 0): the red channel) -> A; logits = mean(A)·(−1, +1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        z = self.conv(x).mean((1, 2, 3))
        return torch.stack([-z, z], 1)


def _images(n: int = 2, size: int = 8, seed: int = 0) -> Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_registry_holds_every_explainer_and_shapley() -> None:
    assert list_explainers() == ["shapley", "gradcam", "gradcam++", "ig", "occlusion", "saliency"]
    assert {n for n, e in EXPLAINERS.items() if not e.signed} == {"gradcam", "gradcam++", "saliency"}


def test_integrated_gradients_of_a_linear_model_is_input_times_weight() -> None:
    w = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    x = _images()
    res = attribute("ig", Linear(w), x, [1, 0], grid=4)
    expected = torch.stack([(x[0] * w[1]).sum(0), (x[1] * w[0]).sum(0)]).double()
    torch.testing.assert_close(res.pixels, expected, rtol=1e-5, atol=1e-6)
    assert res.pixels.shape == (2, 8, 8) and res.cells.shape == (2, 4, 4) and res.signed
    # the pixel -> cell rule is a sum: the cells keep the map's total (= f(x) − f(0) for IG)
    torch.testing.assert_close(res.cells.sum((1, 2)), expected.sum((1, 2)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(res.cells[0, 0, 0], expected[0, :2, :2].sum())
    assert res.seconds.shape == (2,) and (res.seconds > 0).all() and res.explainer == "ig"


def test_a_single_logit_model_explains_z_for_class_1_and_minus_z_for_class_0() -> None:
    w = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    x = _images()
    res = attribute("ig", Linear(w), x, [1, 0])
    torch.testing.assert_close(res.pixels[0], (x[0] * w[0]).sum(0).double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(res.pixels[1], -(x[1] * w[0]).sum(0).double(), rtol=1e-5, atol=1e-6)
    assert res.cells is None
    with pytest.raises(UserError, match=r"class indices in 0\.\.1"):
        attribute("ig", Linear(w), x, 2)


def test_occlusion_of_an_additive_model_is_each_cells_term() -> None:
    x = _images(size=8)
    res = attribute("occlusion", CellSquares(4), x, 1, grid=4)
    terms = (nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), 4) ** 2)[:, 0].double()
    torch.testing.assert_close(res.cells, terms, rtol=1e-5, atol=1e-7)
    # every pixel of a cell holds the same share of it
    torch.testing.assert_close(res.pixels[:, :2, :2], terms[:, :1, :1].expand(2, 2, 2) / 4, rtol=1e-5, atol=1e-7)


def test_shapley_of_the_additive_model_equals_occlusion_and_spreads_over_pixels() -> None:
    x = _images(size=8)
    sh = attribute("shapley", CellSquares(2).eval(), x, 1, grid=2, estimator="exact")
    occ = attribute("occlusion", CellSquares(2), x, 1, grid=2)
    torch.testing.assert_close(sh.cells, occ.cells, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pixels_to_cells(sh.pixels, 2), sh.cells)
    assert sh.extra["n_forward"].tolist() == [16, 16] and sh.extra["estimator"] == "exact"


def test_cells_and_pixels_round_trip_when_the_grid_does_not_divide() -> None:
    cells = torch.randn(1, 3, 3, dtype=torch.float64)
    pixels = cells_to_pixels(cells, (10, 8))
    torch.testing.assert_close(pixels_to_cells(pixels, 3), cells)
    assert pixels[0, 0, 0] == cells[0, 0, 0] / (3 * 2)  # rows 0..3, columns 0..2


def test_saliency_of_a_linear_model_is_the_largest_weight_magnitude_over_channels() -> None:
    w = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    res = attribute("saliency", Linear(w), _images(), 1)
    torch.testing.assert_close(res.pixels, w[1].abs().amax(0).double().expand(2, 8, 8))
    assert not res.signed


@pytest.mark.parametrize("name", ["gradcam", "gradcam++"])
def test_gradcam_of_a_one_channel_map_is_that_map_min_max_scaled(name: str) -> None:
    pytest.importorskip("pytorch_grad_cam")
    x = _images()
    res = attribute(name, RedCam(), x, 1, grid=4)
    red = x[:, 0].double()
    lo, hi = red.amin((1, 2), keepdim=True), red.amax((1, 2), keepdim=True)
    torch.testing.assert_close(res.pixels, (red - lo) / (hi - lo + 1e-7), rtol=1e-4, atol=1e-5)
    assert res.layer == "conv" and not res.signed and res.cells.shape == (2, 4, 4)


def test_gradcam_of_a_single_logit_model() -> None:
    """(N, 1) output z: class 1 is z (the red map again), class 0 is −z, whose Grad-CAM weight is
    negative on a non-negative map, so ReLU leaves nothing."""
    pytest.importorskip("pytorch_grad_cam")

    class OneLogit(RedCam):
        def forward(self, x: Tensor) -> Tensor:
            return super().forward(x)[:, 1:]

    x = _images()
    torch.testing.assert_close(attribute("gradcam", OneLogit(), x, 1).pixels, attribute("gradcam", RedCam(), x, 1).pixels)
    assert float(attribute("gradcam", OneLogit(), x, 0).pixels.abs().max()) == 0.0


def test_gradcams_layer_is_the_deepest_as_fine_as_the_grid() -> None:
    model = create_model("det", width=4).eval()
    x = _images(1, 64)
    # 64 px: layer1 16x16, layer2 8x8, layer3 4x4, layer4 2x2
    assert [choose_cam_layer(model, x, g) for g in (None, 2, 4, 8, 16)] == [
        "layer4", "layer4", "layer3", "layer2", "layer1"]
    pytest.importorskip("pytorch_grad_cam")
    res = attribute("gradcam", model, x, 1, grid=8)
    assert res.layer == "layer2" and res.pixels.shape == (1, 64, 64)
    assert attribute("gradcam", model, x, 1, grid=8, layer="layer4.1").layer == "layer4.1"
    with pytest.raises(UserError, match=r"no layer .layer9.*layer4\.1\.conv2"):
        attribute("gradcam", model, x, 1, layer="layer9")


def test_gradcam_on_a_model_without_conv_names_the_layers_it_could_use() -> None:
    pytest.importorskip("pytorch_grad_cam")
    model = nn.Sequential()
    model.add_module("flat", nn.Flatten())
    model.add_module("fc", nn.Linear(3 * 8 * 8, 2))
    with pytest.raises(UserError, match=r"(?s)has none.*layer=.*could use: flat, fc"):
        attribute("gradcam", model.eval(), _images(), 1, grid=4)


def test_a_model_in_train_mode_is_explained_in_eval_mode_and_restored() -> None:
    model = create_model("det", width=4)  # BatchNorm: train mode would use the batch's statistics
    x = _images(2, 32)
    with pytest.warns(UserWarning, match="train mode"):
        res = attribute("ig", model, x, 1, steps=8)
    assert model.training
    torch.testing.assert_close(res.pixels, attribute("ig", model.eval(), x, 1, steps=8).pixels)


def test_a_missing_library_names_its_install_command(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(UserError, match=r"needs pytorch_grad_cam \(pip install 'fstmatch\[gradcam\]'\)"):
        attribute("gradcam", RedCam(), _images(), 1)
    with pytest.raises(UserError, match=r"needs captum \(pip install captum"):
        attribute("ig", RedCam(), _images(), 1)


def test_bad_input_is_a_user_error() -> None:
    w = torch.randn(2, 3, 8, 8)
    x = _images()
    with pytest.raises(UserError, match=r"unknown explainer .lime.; known: shapley, gradcam, gradcam\+\+, ig, occlusion, saliency"):
        attribute("lime", Linear(w), x, 1)
    with pytest.raises(UserError, match="occlusion occludes grid cells: pass grid"):
        attribute("occlusion", Linear(w), x, 1)
    with pytest.raises(UserError, match="grid=3 must divide the image size 8x8"):
        attribute("occlusion", Linear(w), x, 1, grid=3)
    with pytest.raises(UserError, match=r"unknown argument\(s\) \['stepz'\]"):
        attribute("ig", Linear(w), x, 1, stepz=4)
    with pytest.raises(UserError, match="layer= applies to Grad-CAM only"):
        attribute("ig", Linear(w), x, 1, layer="conv")
    with pytest.raises(UserError, match=r"float tensor \(N, 3, H, W\)"):
        attribute("ig", Linear(w), (x * 255).to(torch.uint8), 1)
    with pytest.raises(UserError, match="grid must be an integer from 1 to 8"):
        attribute("ig", Linear(w), x, 1, grid=9)
