"""Bad input, model handling (train mode, never mutated, callables), bf16 and the optimised copy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fstmatch.errors import UserError
from fstmatch.explain import ShapleyInputError, shapley

from .toys import CellGame, small_cnn


def test_grid_must_divide_the_image() -> None:
    with pytest.raises(ShapleyInputError, match=r"grid=5 does not divide the image size 12x12"):
        shapley(CellGame(3), torch.ones(1, 3, 12, 12), 0, grid=5)
    with pytest.raises(ValueError, match="divide"):  # also a ValueError
        shapley(CellGame(3), torch.ones(1, 3, 12, 10), 0, grid=3)


def test_exact_refuses_large_grids_with_the_coalition_count() -> None:
    with pytest.raises(UserError, match=r"2\*\*16 = 65,536 coalitions"):
        shapley(CellGame(4), torch.ones(1, 3, 16, 16), 0, grid=4, estimator="exact")


@pytest.mark.parametrize(
    ("targets", "match"),
    [([0, 2], r"target class 2 is out of range: the model has 2 outputs"), ([0], "1 entries for 2 images"),
     ([-1, 0], ">= 0"), (torch.tensor([0.0, 1.0]), "integer class indices")],
)
def test_bad_targets(targets, match) -> None:
    with pytest.raises(ShapleyInputError, match=match):
        shapley(CellGame(2, n_classes=2), torch.ones(2, 3, 8, 8), targets, grid=2, budget=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"estimator": "kernelshap"}, "estimator must be one of"), ({"baselines": "grey"}, "baseline must be"),
     ({"baselines": torch.zeros(2, 5)}, "does not broadcast"), ({"batch_size": 0}, "batch_size"),
     ({"budget": 0}, "budget"), ({"max_stderr": -1.0}, "max_stderr must be > 0"),
     ({"estimator": "reference", "max_stderr": 0.1}, "max_stderr applies to the estimators")],
)
def test_bad_arguments(kwargs, match) -> None:
    with pytest.raises(ShapleyInputError, match=match):
        shapley(CellGame(2), torch.ones(1, 3, 8, 8), 0, grid=2, **kwargs)


def test_bad_images() -> None:
    with pytest.raises(ShapleyInputError, match=r"\(N, C, H, W\)"):
        shapley(CellGame(2), torch.ones(3, 8, 8), 0, grid=2)
    with pytest.raises(ShapleyInputError, match="floating point"):
        shapley(CellGame(2), torch.ones(1, 3, 8, 8, dtype=torch.uint8), 0, grid=2)
    with pytest.raises(ShapleyInputError, match="NaN"):
        shapley(CellGame(2), torch.full((1, 3, 8, 8), float("nan")), 0, grid=2)


def test_nan_logits_are_an_error() -> None:
    def broken(x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 2)
        out[x.mean((1, 2, 3)) < 0.5] = float("nan")  # NaN once half the image is masked
        return out

    with pytest.raises(ShapleyInputError, match="non-finite target logit"):
        shapley(broken, torch.ones(1, 3, 8, 8), 0, grid=2, budget=2)


def test_outputs_of_the_wrong_shape_are_an_error_naming_it() -> None:
    with pytest.raises(ShapleyInputError, match=r"returned \(2, 3, 8\) for a batch of shape \(2, 3, 8, 8\)"):
        shapley(lambda x: x.mean(3), torch.ones(1, 3, 8, 8), 0, grid=2, estimator="exact", batch_size=2)
    with pytest.raises(ShapleyInputError, match="returned list"):
        shapley(lambda x: [1.0], torch.ones(1, 3, 8, 8), 0, grid=2, budget=2)


def test_one_output_per_input_needs_no_target() -> None:
    """A scalar function (B,) is explained with target=None, as its (B, 1) version with target 0."""
    x = torch.rand(2, 3, 8, 8)
    scalar = shapley(lambda b: b.mean((1, 2, 3)) * 3, x, grid=2, estimator="exact")
    column = shapley(lambda b: b.mean((1, 2, 3)).view(-1, 1) * 3, x, 0, grid=2, estimator="exact")
    torch.testing.assert_close(scalar.values, column.values)


def test_train_mode_warns_evaluates_in_eval_and_restores() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Dropout(0.9), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    net[4].eval()  # a mixed-mode model: each submodule's flag must come back as it was
    net.train()
    net[4].training = False
    images = torch.rand(1, 3, 8, 8)
    with pytest.warns(UserWarning, match="train mode"):
        a = shapley(net, images, 1, grid=2, estimator="exact")
    assert net.training and net[1].training and not net[4].training
    b = shapley(net.eval(), images, 1, grid=2, estimator="exact")  # dropout off: deterministic
    torch.testing.assert_close(a.values, b.values, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kwargs", [{"optimize": True}, {"dtype": torch.bfloat16}, {"optimize": False}])
def test_model_is_never_modified(kwargs) -> None:
    net = small_cnn()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    names = [n for n, _ in net.named_modules()]
    shapley(net, torch.rand(1, 3, 8, 8), 0, grid=2, estimator="exact", **kwargs)
    after = net.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        assert after[k].dtype == v.dtype and torch.equal(after[k], v), k
        assert after[k].is_contiguous(), k
    assert [n for n, _ in net.named_modules()] == names
    assert not net.training


def test_optimised_copy_matches_eager_model() -> None:
    """BatchNorm folding + channels_last change only float rounding."""
    net = small_cnn(seed=1)
    images = torch.rand(2, 3, 12, 12)
    fast = shapley(net, images, [0, 2], grid=3, estimator="exact", optimize=True)
    eager = shapley(net, images, [0, 2], grid=3, estimator="exact", optimize=False)
    scale = eager.values.abs().max()
    torch.testing.assert_close(fast.values, eager.values, atol=1e-4 * float(scale), rtol=0)


def test_bf16_maps_are_close_to_fp32() -> None:
    net = small_cnn(seed=2, n_classes=2)
    images = torch.rand(2, 3, 12, 12)
    fp32 = shapley(net, images, [0, 1], grid=3, estimator="exact")
    bf16 = shapley(net, images, [0, 1], grid=3, estimator="exact", dtype=torch.bfloat16)
    assert bf16.dtype == "bfloat16" and fp32.dtype == "float32"
    cos = (fp32.normalized() * bf16.normalized()).sum((1, 2))
    assert (cos > 0.95).all(), cos
    assert not torch.equal(fp32.values, bf16.values)  # bf16 really ran
    # a plain callable runs under autocast instead
    auto = shapley(lambda x: net(x), images, [0, 1], grid=3, estimator="exact", dtype=torch.bfloat16)
    assert ((fp32.normalized() * auto.normalized()).sum((1, 2)) > 0.95).all()


def test_plain_callable_and_int_target() -> None:
    game = CellGame(2, n_classes=2, seed=7)
    res = shapley(lambda x: game(x), torch.ones(2, 3, 8, 8), 1, grid=2, estimator="exact")
    torch.testing.assert_close(res.values[1].flatten(), game.closed_form(1), atol=1e-5, rtol=0)
    assert res.targets.tolist() == [1, 1]


def test_batchnorm_folding_finds_conv_bn_pairs_without_tracing() -> None:
    from fstmatch.explain._utils import fold_batchnorm

    net = small_cnn(seed=3)
    probe = torch.rand(1, 3, 8, 8)
    folded = fold_batchnorm(net, probe)
    assert folded is not net and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 2  # original untouched
    x = torch.rand(4, 3, 8, 8)
    torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-4)


def test_batchnorm_folding_refuses_when_the_conv_output_is_reused() -> None:
    from fstmatch.explain._utils import fold_batchnorm

    class Reuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)
            self.bn.running_mean.fill_(0.3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return (self.bn(y) + y).mean((2, 3))  # y feeds both BN and the sum: folding is wrong

    net = Reuse().eval()
    assert fold_batchnorm(net, torch.rand(1, 3, 4, 4)) is net


def test_images_follow_the_model_dtype() -> None:
    """float64 images on a float32 model (and the reverse) are cast to the model's dtype."""
    game = CellGame(2, n_classes=2, seed=7)
    a = shapley(game, torch.ones(1, 3, 8, 8, dtype=torch.float64), 1, grid=2, estimator="exact")
    b = shapley(game.double(), torch.ones(1, 3, 8, 8), 1, grid=2, estimator="exact")
    torch.testing.assert_close(a.values[0].flatten(), game.closed_form(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(b.values, a.values, atol=1e-5, rtol=0)


def test_old_keywords_still_work_with_a_deprecation_warning() -> None:
    game, x = CellGame(2), torch.ones(1, 3, 8, 8)
    new = shapley(game, x, target=0, grid=2, estimator="permutation", budget=4, baselines="mean")
    with pytest.warns(DeprecationWarning) as caught:
        old = shapley(game, x, targets=0, grid=2, method="permutation", n_permutations=4, baseline="mean")
    assert sorted(str(w.message) for w in caught) == [f"shapley({o}=...) is renamed {n}=..." for o, n in (
        ("baseline", "baselines"), ("method", "estimator"), ("n_permutations", "budget"), ("targets", "target"))]
    torch.testing.assert_close(old.values, new.values)
    with pytest.raises(TypeError, match="estimator= only"):
        shapley(game, x, 0, grid=2, estimator="exact", method="exact")
    with pytest.raises(TypeError, match="unexpected keyword"):
        shapley(game, x, 0, grid=2, n_perm=3)


def _resnet(seed: int) -> nn.Module:
    from fstmatch.models import create_model

    torch.manual_seed(seed)
    net = create_model("resnet18", num_classes=3, width=8).eval()
    for m in net.modules():  # non-trivial BN statistics, so that folding has work to do
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net


def test_input_normalisation_is_hoisted_exactly(monkeypatch) -> None:
    """The optimised path normalises images and baselines once, not each masked batch: the maps are
    bit for bit those of the same path normalising inside the model, and the model is untouched."""
    from fstmatch.explain import _stem, _utils

    # the stem masker (which needs the hoist) sums in another order: compare the masked forwards alone
    monkeypatch.setattr(_stem.StemMasker, "find", classmethod(lambda cls, *a, **k: None))
    from fstmatch.models.layers import ImageNormalize

    net = _resnet(4)
    x = torch.rand(3, 3, 32, 32)
    stripped, norm = _utils.hoist_input_normalize(net, x[:1])
    assert isinstance(norm, ImageNormalize) and isinstance(net.normalize, ImageNormalize)
    assert not any(isinstance(m, ImageNormalize) for m in stripped.modules())
    with torch.no_grad():
        assert torch.equal(stripped(norm(x)), net(x))
    hoisted = shapley(net, x, [0, 1, 2], grid=4, budget=4, baselines="blur")
    original = _utils.hoist_input_normalize
    try:
        _utils.hoist_input_normalize = lambda module, probe, probe_args=(): (module, None)
        inside = shapley(net, x, [0, 1, 2], grid=4, budget=4, baselines="blur")
    finally:
        _utils.hoist_input_normalize = original
    assert torch.equal(hoisted.values, inside.values) and torch.equal(hoisted.stderr, inside.stderr)


def test_input_normalisation_stays_when_the_raw_input_is_used_elsewhere() -> None:
    from fstmatch.explain._utils import hoist_input_normalize

    class RawToo(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _resnet(5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x) + x.mean((1, 2, 3)).unsqueeze(1)  # the raw input also feeds the output

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _resnet(6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.normalize(self.net.normalize(x)).mean((2, 3))  # also normalises a non-input

    probe = torch.rand(1, 3, 32, 32)
    for model in (RawToo().eval(), Twice().eval(), small_cnn()):
        assert hoist_input_normalize(model, probe) == (model, None), type(model).__name__
