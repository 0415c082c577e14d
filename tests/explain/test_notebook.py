"""The notebook API: plain forward functions, feature masks, extra forward arguments, pixel maps,
figures and facial-part concepts, checked against enumeration by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from fstmatch.explain import FACE_CONCEPTS, ShapleyInputError, face_concepts, plot, shapley


def _irregular_mask(h: int = 10, w: int = 12, k: int = 7, seed: int = 0) -> torch.Tensor:
    """An irregular (H, W) label map with labels 0..k-1, each present: random labels, then every
    label forced on one pixel (so no two labels are grid cells)."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.randint(0, k, (h, w), generator=gen)
    mask.view(-1)[torch.randperm(h * w, generator=gen)[:k]] = torch.arange(k)
    return mask


def _enumerate(f, image: torch.Tensor, base: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Shapley values by the definition: every coalition built pixel by pixel with Python loops."""
    def v(coalition: tuple[int, ...]) -> float:
        keep = torch.zeros_like(mask, dtype=torch.bool)
        for label in coalition:
            keep |= mask == label
        return float(f(torch.where(keep, image, base).unsqueeze(0))[0])

    phi = torch.zeros(k, dtype=torch.float64)
    for i in range(k):
        others = [j for j in range(k) if j != i]
        for size in range(k):
            weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            for s in itertools.combinations(others, size):
                phi[i] += weight * (v((*s, i)) - v(s))
    return phi


def test_plain_function_with_a_7_concept_irregular_mask_is_exact() -> None:
    """Done-when of issue 19: a plain Python forward function, 7 irregular concepts, exact = enumeration."""
    mask = _irregular_mask()
    gen = torch.Generator().manual_seed(1)
    weights = torch.randn(3, 10, 12, generator=gen)

    def f(x: torch.Tensor) -> torch.Tensor:  # a non-additive scalar function: tanh of a weighted sum, squared terms
        s = (x * weights).flatten(1).sum(1)
        return torch.tanh(s / 10) + 0.05 * (x[:, 0] ** 2).flatten(1).sum(1) * x[:, 1, :3].flatten(1).mean(1)

    images = torch.rand(2, 3, 10, 12, generator=gen)
    res = shapley(f, images, feature_mask=mask, estimator="exact")
    assert res.values.shape == (2, 7) and res.grid is None
    for n in range(2):
        truth = _enumerate(f, images[n], torch.zeros_like(images[n]), mask, 7)
        torch.testing.assert_close(res.values[n], truth, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(res.values.sum(1), res.v_full - res.v_empty, atol=1e-9, rtol=0)


def test_per_image_masks_and_sampling_estimators_converge() -> None:
    masks = torch.stack([_irregular_mask(seed=s) for s in (0, 1)])
    w = torch.randn(2, 3, 10, 12, generator=torch.Generator().manual_seed(2))

    def f(x):
        return (x.unsqueeze(1) * w).flatten(2).sum(2)  # (B, 2) linear: Shapley = the mask's share of the sum

    images = torch.rand(2, 3, 10, 12, generator=torch.Generator().manual_seed(3))
    exact = shapley(f, images, [0, 1], feature_mask=masks, estimator="exact")
    for n, t in enumerate((0, 1)):
        contrib = (images[n] * w[t]).sum(0)
        truth = torch.stack([contrib[masks[n] == k].sum() for k in range(7)]).double()
        torch.testing.assert_close(exact.values[n], truth, atol=1e-5, rtol=1e-5)
    for est in ("spline", "permutation", "kernel"):  # additive game: paired / antithetic estimators are exact
        res = shapley(f, images, [0, 1], feature_mask=masks, estimator=est, budget=8)
        torch.testing.assert_close(res.values, exact.values, atol=1e-5, rtol=1e-5)
    ref = shapley(f, images, [0, 1], feature_mask=masks, estimator="reference", budget=3)
    torch.testing.assert_close(ref.values, exact.values, atol=1e-5, rtol=1e-5)


def test_additional_forward_args_per_image_and_shared() -> None:
    scale = torch.tensor([1.0, -2.0])  # one row per image: indexed by the batch's images

    def f(x, s, offset):
        return x.flatten(1).sum(1, keepdim=True) * s.view(-1, 1) + offset

    images = torch.rand(2, 1, 4, 4)
    res = shapley(f, images, 0, grid=2, estimator="exact", additional_forward_args=(scale, 3.0), batch_size=3)
    cells = images[:, 0].unfold(1, 2, 2).unfold(2, 2, 2).sum((-1, -2)).double()  # (2, 2, 2) cell sums
    torch.testing.assert_close(res.values, cells * scale.double().view(-1, 1, 1), atol=1e-5, rtol=1e-5)


def test_nn_module_with_a_mask_and_the_old_positional_call() -> None:
    from .toys import small_cnn

    net, images = small_cnn(), torch.rand(2, 3, 8, 8)
    grid_mask = (torch.arange(8) // 4).view(-1, 1) * 2 + (torch.arange(8) // 4).view(1, -1)  # the 2x2 grid
    by_mask = shapley(net, images, [0, 2], feature_mask=grid_mask, estimator="exact")
    by_grid = shapley(net, images, [0, 2], 2, None, "exact")  # old positional (model, images, targets, grid, budget, method)
    torch.testing.assert_close(by_mask.values, by_grid.values.flatten(1))


@pytest.mark.parametrize(
    ("mask", "match"),
    [(torch.zeros(8, 9, dtype=torch.long), r"feature_mask of shape \(8, 9\) does not match the inputs \(2, 3, 8, 8\)"),
     (torch.zeros(3, 8, 8, dtype=torch.long), r"shape \(3, 8, 8\) does not match"),
     (torch.tensor([0, 2] * 32).view(8, 8), r"lacks label\(s\) \[1\]"),
     (torch.zeros(8, 8), "integer labels"),
     (torch.full((8, 8), -1), ">= 0"),
     (torch.arange(64).view(8, 8) % 13, "limited to 12 players")],
)
def test_bad_feature_masks(mask, match) -> None:
    with pytest.raises(ShapleyInputError, match=match):
        shapley(lambda x: x.flatten(1).sum(1), torch.rand(2, 3, 8, 8), feature_mask=mask, estimator="exact")


def test_a_gap_in_one_image_of_a_batch_names_it() -> None:
    masks = torch.stack([torch.arange(64).view(8, 8) % 3, torch.arange(64).view(8, 8) % 3])
    masks[1][masks[1] == 1] = 0
    with pytest.raises(ShapleyInputError, match=r"image 1 lacks label\(s\) \[1\]"):
        shapley(lambda x: x.flatten(1).sum(1), torch.rand(2, 3, 8, 8), feature_mask=masks, estimator="exact")


def test_target_needed_when_the_function_has_several_outputs() -> None:
    with pytest.raises(ShapleyInputError, match="out of range"):
        shapley(lambda x: x.flatten(1)[:, :1], torch.rand(1, 3, 4, 4), 1, grid=2, estimator="exact")
    with pytest.raises(ShapleyInputError, match=r"returned \(16, 3\) \(3 outputs per input\): pass target="):
        shapley(lambda x: x.flatten(1)[:, :3], torch.rand(1, 3, 4, 4), grid=2, estimator="exact")


def test_a_module_with_extra_forward_args_is_folded_and_exact() -> None:
    from .toys import small_cnn

    class Shifted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = small_cnn()

        def forward(self, x, shift):
            return self.net(x) + shift.view(-1, 1)

    model, images, shift = Shifted().eval(), torch.rand(2, 3, 8, 8), torch.tensor([0.5, -1.0])
    res = shapley(model, images, [0, 1], grid=2, estimator="exact", additional_forward_args=shift)
    plain = shapley(model.net, images, [0, 1], grid=2, estimator="exact")
    torch.testing.assert_close(res.values, plain.values, atol=1e-5, rtol=1e-5)  # a constant shift has no value
    torch.testing.assert_close(res.v_full, plain.v_full + shift.double(), atol=1e-5, rtol=1e-5)


def test_to_pixels_carries_each_players_value() -> None:
    images = torch.rand(1, 3, 8, 8)
    res = shapley(lambda x: x.flatten(1).sum(1), images, grid=2, estimator="exact")
    px = res.to_pixels()
    assert px.shape == (1, 8, 8)
    assert torch.equal(px[0, :4, :4], res.values[0, 0, 0].expand(4, 4))
    assert torch.equal(px[0, 4:, :4], res.values[0, 1, 0].expand(4, 4))
    mask = _irregular_mask(8, 8, 5)
    res = shapley(lambda x: x.flatten(1).sum(1), images, feature_mask=mask, estimator="exact")
    px = res.to_pixels()
    assert torch.equal(px[0], res.values[0][mask])
    torch.testing.assert_close(res.to_pixels(normalized=True)[0], res.normalized()[0][mask])


def test_plot_returns_a_figure_and_the_png_writer_builds_on_it(tmp_path) -> None:
    from matplotlib.figure import Figure

    from fstmatch.explain.plot import overlay_png

    image, values = torch.rand(3, 8, 8), torch.randn(2, 2)
    fig = plot(image, values, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert fig.axes[1].images[-1].get_array().shape == (2, 2)
    fig = plot(image.permute(1, 2, 0).numpy(), torch.randn(8, 8))  # a pixel map
    assert fig.axes[1].images[-1].get_array().shape == (8, 8)
    overlay_png(image.numpy(), values.numpy(), tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def _template_landmarks(size: int = 224) -> np.ndarray:
    """A plausible frontal face's 68 points in a size x size crop (dlib order), drawn by hand."""
    s = size / 224
    jaw = [(40 + 144 * i / 16, 110 + 80 * math.sin(math.pi * i / 16)) for i in range(17)]
    brow_r = [(60 + 10 * i, 88 - 4 * math.sin(math.pi * i / 4)) for i in range(5)]
    brow_l = [(124 + 10 * i, 88 - 4 * math.sin(math.pi * i / 4)) for i in range(5)]
    nose = [(112, 100 + 10 * i) for i in range(4)] + [(100 + 6 * i, 142 + 3 * (i in (1, 2, 3))) for i in range(5)]

    def eye(cx):
        return [(cx - 12, 105), (cx - 5, 100), (cx + 5, 100), (cx + 12, 105), (cx + 5, 109), (cx - 5, 109)]

    mouth_outer = [(90 + 44 * (0.5 - 0.5 * math.cos(2 * math.pi * i / 12)), 165 - 8 * math.sin(2 * math.pi * i / 12))
                   for i in range(12)]
    mouth_inner = [(97 + 30 * i / 4, 165) for i in range(5)] + [(97 + 30 * i / 2, 166) for i in (2, 1, 0)]
    pts = jaw + brow_r + brow_l + nose + eye(85) + eye(139) + mouth_outer + mouth_inner
    assert len(pts) == 68
    return np.array(pts) * s


def test_face_concepts_draws_every_part_where_it_belongs() -> None:
    lm = _template_landmarks()
    mask = face_concepts(lm, 224)
    assert mask.shape == (224, 224) and mask.dtype == torch.int64
    assert sorted(torch.unique(mask).tolist()) == list(range(len(FACE_CONCEPTS)))
    name = {k: i for i, k in enumerate(FACE_CONCEPTS)}
    at = lambda x, y: int(mask[int(y), int(x)])  # noqa: E731
    assert at(85, 105) == name["eyes"] and at(139, 104) == name["eyes"]
    assert at(80, 87) == name["brows"]
    assert at(112, 125) == name["nose"]
    assert at(112, 163) == name["mouth"]
    assert at(112, 185) == name["jaw"] and at(62, 140) == name["jaw"]  # chin and jaw band
    assert at(70, 130) == name["cheeks"] and at(155, 130) == name["cheeks"]
    assert at(112, 60) == name["forehead"]
    assert at(5, 5) == name["rest"] and at(112, 220) == name["rest"]
    # a batch, and a usable feature mask
    both = face_concepts(np.stack([lm, lm]), (224, 224))
    assert both.shape == (2, 224, 224) and torch.equal(both[1], mask)
    res = shapley(lambda x: x.flatten(1).mean(1), torch.rand(1, 3, 224, 224), feature_mask=mask, estimator="exact")
    assert res.values.shape == (1, len(FACE_CONCEPTS))


def test_face_concepts_bad_landmarks() -> None:
    with pytest.raises(ShapleyInputError, match=r"\(68, 2\)"):
        face_concepts(np.zeros((5, 2)), 64)
    with pytest.raises(ShapleyInputError, match="no pixel of the crop"):
        face_concepts(_template_landmarks() + 1000, 224)
