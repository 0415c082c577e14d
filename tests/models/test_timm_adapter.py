"""The optional timm adapter, against a stub ``timm`` module (timm is not a dependency) and, when
installed, the real one."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from fstmatch.errors import UserError
from fstmatch.models import create_model, load_model, load_weights, save_model


class _StubTimmNet(nn.Module):
    """Mimics timm's interface: forward_features -> maps, forward_head(maps, pre_logits), get_classifier."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_features = 4
        self.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "classifier": "head"}
        self.stem = nn.Conv2d(3, 4, 1, bias=False)
        with torch.no_grad():
            self.stem.weight.copy_(torch.eye(4, 3).view(4, 3, 1, 1))  # channels r, g, b, 0
        self.head = nn.Linear(4, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stem(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.head(x)

    def get_classifier(self) -> nn.Module:
        return self.head


@pytest.fixture
def stub_timm(monkeypatch):
    created = []

    def create(name: str, pretrained: bool = False, num_classes: int = 1000, **kwargs):
        if name != "stubnet":
            raise RuntimeError(f"Unknown model ({name})")
        created.append((name, pretrained, num_classes, kwargs))
        return _StubTimmNet(num_classes)

    module = types.ModuleType("timm")
    module.create_model = create
    monkeypatch.setitem(sys.modules, "timm", module)
    return created


def test_adapter_normalises_with_the_models_own_mean_std(stub_timm) -> None:
    model = create_model("timm:stubnet", num_classes=3)
    assert stub_timm == [("stubnet", False, 3, {})]
    x = torch.zeros(2, 3, 8, 8)
    x[:, 0] = 1.0  # red image: (1 - 0.5) / 0.5 = 1 in R, (0 - 0.5) / 0.5 = -1 in G and B
    torch.testing.assert_close(model.forward_features(x), torch.tensor([[1.0, -1.0, -1.0, 0.0]] * 2))
    torch.testing.assert_close(model(x), model.model.head(model.forward_features(x)))
    assert model.num_features == 4 and model.fst_meta == {
        "name": "timm:stubnet",
        "kwargs": {"num_classes": 3},
    }


def test_adapter_behind_roles_and_round_trip(stub_timm, tmp_path: Path) -> None:
    det = create_model("det", arch="timm:stubnet")
    assert det(torch.rand(1, 3, 8, 8)).shape == (1, 2)
    fst = create_model("fstmatching", num_identities=4, arch="timm:stubnet", head_hidden=3)
    assert fst(torch.rand(2, 3, 8, 8)).shape == (2, 2) and fst.num_features == 8
    save_model(det, tmp_path / "det.safetensors")
    loaded = load_model(tmp_path / "det.safetensors")
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(loaded(x), det(x))
    # the adapter's own "model." keys are not mistaken for a wrapper prefix
    fresh = load_weights(create_model("det", arch="timm:stubnet"), tmp_path / "det.safetensors")
    torch.testing.assert_close(fresh(x), det(x))
    with pytest.raises(UserError, match="width=16 applies to the built-in ResNets only"):
        create_model("det", arch="timm:stubnet", width=16)
    with pytest.raises(UserError, match="timm could not create 'nosuch'"):
        create_model("timm:nosuch")


def test_adapter_without_timm_is_a_user_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(UserError, match=r"need timm \(pip install 'fstmatch\[timm\]'\)"):
        create_model("timm:resnet18", num_classes=2)


def test_real_timm_resnet18_if_installed() -> None:
    pytest.importorskip("timm")
    model = create_model("timm:resnet18", num_classes=2).eval()
    assert model.forward_features(torch.rand(1, 3, 64, 64)).shape == (1, 512)
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 2)


def test_weights_path_loads_a_timm_state_dict_strictly(stub_timm, tmp_path: Path) -> None:
    trained = _StubTimmNet(3)
    with torch.no_grad():
        trained.head.weight.normal_()
        trained.stem.weight.normal_()
    path = tmp_path / "mine.pth"
    torch.save(trained.state_dict(), path)  # the timm model's own keys: stem.*, head.*
    model = create_model("timm:stubnet", num_classes=3, weights=str(path))
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(model(x), trained.head(trained.forward_head(trained.stem((x - 0.5) / 0.5), True)))
    assert not model.training and model.fst_meta == {"name": "timm:stubnet", "kwargs": {"num_classes": 3}}
    with pytest.raises(UserError, match=r"shape head.weight: .* \(3, 4\) vs model \(1000, 4\)"):
        load_model(path, arch="timm:stubnet")  # timm's default 1000 classes: the head does not fit
    with pytest.raises(UserError, match=r"(?s)does not fit model .timm:stubnet.*shape head.weight"):
        create_model("timm:stubnet", num_classes=2, weights=str(path))
