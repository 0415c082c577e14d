"""DeepfakeBench checkpoints: modules built here the way DeepfakeBench builds its detectors (its
``training/networks`` construction, written independently of fstmatch's), saved with
``torch.save(detector.state_dict())`` and loaded by name with equal logits; refusals named."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fstmatch.errors import UserError
from fstmatch.models import create_model, load_model

# -- DeepfakeBench's detector layout, re-written for the test ----------------------------------


class _Sep(nn.Module):
    def __init__(self, cin, cout, k=1, s=1, p=0):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, k, s, p, 1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, 1, 0, 1, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class _Block(nn.Module):
    """Built like DeepfakeBench's Block: a list of appends, then ``rep[1:]`` or ``rep[0] = ReLU``."""

    def __init__(self, cin, cout, reps, strides=1, start_with_relu=True, grow_first=True):
        super().__init__()
        if cout != cin or strides != 1:
            self.skip = nn.Conv2d(cin, cout, 1, stride=strides, bias=False)
            self.skipbn = nn.BatchNorm2d(cout)
        else:
            self.skip = None
        self.relu = nn.ReLU(inplace=True)
        rep, filters = [], cin
        if grow_first:
            rep += [self.relu, _Sep(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout)]
            filters = cout
        for _ in range(reps - 1):
            rep += [self.relu, _Sep(filters, filters, 3, 1, 1), nn.BatchNorm2d(filters)]
        if not grow_first:
            rep += [self.relu, _Sep(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout)]
        if not start_with_relu:
            rep = rep[1:]
        else:
            rep[0] = nn.ReLU(inplace=False)
        if strides != 1:
            rep.append(nn.MaxPool2d(3, strides, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, inp):
        x = self.rep(inp)
        x += inp if self.skip is None else self.skipbn(self.skip(inp))
        return x


class _RefXception(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block1 = _Block(64, 128, 2, 2, start_with_relu=False, grow_first=True)
        self.block2 = _Block(128, 256, 2, 2)
        self.block3 = _Block(256, 728, 2, 2)
        for i in range(4, 12):
            setattr(self, f"block{i}", _Block(728, 728, 3, 1))
        self.block12 = _Block(728, 1024, 2, 2, start_with_relu=True, grow_first=False)
        self.conv3 = _Sep(1024, 1536, 3, 1, 1)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = _Sep(1536, 2048, 3, 1, 1)
        self.bn4 = nn.BatchNorm2d(2048)
        self.last_linear = nn.Linear(2048, 2)
        self.adjust_channel = nn.Sequential(nn.Conv2d(2048, 512, 1, 1), nn.BatchNorm2d(512), nn.ReLU(inplace=True))

    def features(self, x):
        x = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
        for i in range(1, 13):
            x = getattr(self, f"block{i}")(x)
        x = self.relu(self.bn3(self.conv3(x)))
        return self.bn4(self.conv4(x))

    def classifier(self, features):
        x = F.adaptive_avg_pool2d(self.relu(features), (1, 1))
        return self.last_linear(x.view(x.size(0), -1))


class _RefEfficientNetB4(nn.Module):
    def __init__(self):
        super().__init__()
        from efficientnet_pytorch import EfficientNet

        self.efficientnet = EfficientNet.from_name("efficientnet-b4")
        self.efficientnet._conv_stem = nn.Conv2d(3, 48, kernel_size=3, stride=2, bias=False)
        self.efficientnet._fc = nn.Identity()
        self.last_layer = nn.Linear(1792, 2)

    def features(self, x):
        return self.efficientnet.extract_features(x)

    def classifier(self, x):
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.last_layer(x.view(x.size(0), -1))


class _RefDetector(nn.Module):
    """DeepfakeBench's detector: ``backbone`` plus a parameter-free loss module."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.loss_func = nn.CrossEntropyLoss()

    def logits(self, x_normalised):
        return self.backbone.classifier(self.backbone.features(x_normalised))


def _nontrivial_bn(model: nn.Module, seed: int) -> nn.Module:
    """Random BatchNorm statistics and affine parameters (a trained-looking network)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                m.num_batches_tracked.fill_(123)
    return model.eval()


@pytest.fixture(scope="module")
def xception_ckpt(tmp_path_factory) -> tuple[Path, _RefDetector]:
    torch.manual_seed(0)
    ref = _nontrivial_bn(_RefDetector(_RefXception()), seed=1)
    path = tmp_path_factory.mktemp("dfb") / "xception_best.pth"
    torch.save(ref.state_dict(), path)
    return path, ref


def _x(n: int = 2, size: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(7))


def test_xception_checkpoint_loads_with_equal_logits(xception_ckpt) -> None:
    path, ref = xception_ckpt
    model = create_model("deepfakebench:xception", weights=path)
    assert set(model.state_dict()) == set(ref.state_dict())  # adjust_channel.* included
    assert not model.training and model.fst_meta == {"name": "deepfakebench:xception", "kwargs": {}}
    x = _x()
    with torch.no_grad():
        expected = ref.logits((x - 0.5) / 0.5)
        got = model(x)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), got, rtol=1e-5, atol=1e-5)
    assert model.forward_features(x).shape == (2, 2048) and model.num_features == 2048
    same = load_model(path, arch="deepfakebench:xception")
    with torch.no_grad():
        torch.testing.assert_close(same(x), expected, rtol=1e-5, atol=1e-5)


def test_efficientnetb4_checkpoint_loads_with_equal_logits(tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_pytorch", reason="efficientnet_pytorch not installed (fstmatch[deepfakebench])")
    torch.manual_seed(0)
    ref = _nontrivial_bn(_RefDetector(_RefEfficientNetB4()), seed=2)
    path = tmp_path / "effnb4_best.pth"
    torch.save(ref.state_dict(), path)
    model = create_model("deepfakebench:efficientnetb4", weights=path)
    assert set(model.state_dict()) == set(ref.state_dict())
    x = _x()
    with torch.no_grad():
        expected = ref.logits((x - 0.5) / 0.5)
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), expected, rtol=1e-5, atol=1e-5)
    assert model.forward_features(x).shape == (2, 1792)


def test_efficientnetb4_without_the_package_is_a_user_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_pytorch", None)
    with pytest.raises(UserError, match=r"needs efficientnet_pytorch.*fstmatch\[deepfakebench\]"):
        create_model("deepfakebench:efficientnetb4")


def test_xception_without_timm_is_a_user_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm.models.xception", None)
    with pytest.raises(UserError, match=r"legacy_xception.*fstmatch\[deepfakebench\]"):
        create_model("deepfakebench:xception")


class _Touch:
    """Unpickling this creates a file: proof that a loader ran pickled code."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_pickled_objects_are_refused_without_running_them(tmp_path: Path) -> None:
    sentinel = tmp_path / "was-run"
    inside = tmp_path / "with_object.pth"
    torch.save({"backbone.conv1.weight": torch.zeros(1), "hook": _Touch(sentinel)}, inside)
    with pytest.raises(UserError, match="refused without running it"):
        create_model("deepfakebench:xception", weights=inside)
    whole = tmp_path / "xception.p"  # DeepfakeBench's whole-model format
    torch.save(_Touch(sentinel), whole)
    with pytest.raises(UserError, match=r"whole-model pickle.*torch.save\(m.state_dict\(\)"):
        create_model("deepfakebench:xception", weights=whole)
    assert not sentinel.exists()


def test_wrong_keys_are_named_with_the_expected_architecture(xception_ckpt, tmp_path: Path) -> None:
    path, _ = xception_ckpt
    state = torch.load(path, weights_only=True)
    state["backbone.extra.weight"] = state.pop("backbone.adjust_channel.0.weight")
    state["backbone.last_linear.weight"] = torch.zeros(3, 2048)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(UserError) as e:
        create_model("deepfakebench:xception", weights=bad)
    text = str(e.value)
    assert "does not fit model 'deepfakebench:xception'" in text
    assert "missing backbone.adjust_channel.0.weight (512, 2048, 1, 1)" in text
    assert "unexpected backbone.extra.weight (512, 2048, 1, 1)" in text
    assert "shape backbone.last_linear.weight: " in text and "(3, 2048) vs model (2, 2048)" in text


def test_unknown_architecture_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match="known: deepfakebench:xception, deepfakebench:efficientnetb4"):
        create_model("deepfakebench:resnet34")
    with pytest.raises(UserError, match=r"deepfakebench:<name>.*timm:<name>"):
        create_model("xception")


def test_plain_state_dict_without_arch_says_to_name_it(xception_ckpt) -> None:
    path, _ = xception_ckpt
    with pytest.raises(UserError, match="--arch deepfakebench:xception"):
        load_model(path)
