"""The timm adapter against the real timm (an extra that ``make setup`` installs): a CNN, an Xception
and a ViT, each saved by timm itself, load with timm's logits and go through ``fstmatch test`` and
``fstmatch explain``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from fstmatch.cli import main
from fstmatch.data import Geometry, load_face, read_manifest
from fstmatch.errors import UserError
from fstmatch.explain.mapfile import read_maps
from fstmatch.models import create_model, load_model, load_weights, save_model

timm = pytest.importorskip("timm", reason="the timm extra: pip install 'fstmatch[timm]'")

# name -> input size used in the tests (the ViT's patch grid is fixed at 224 px)
FAMILIES = {"resnet18": 64, "legacy_xception": 64, "vit_tiny_patch16_224": 224}


def _timm_net(name: str, seed: int = 0) -> nn.Module:
    """timm's own 2-class model with random weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = timm.create_model(name, pretrained=False, num_classes=2)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        head = net.get_classifier()
        head.weight.normal_(0, 0.5, generator=gen)  # a visible difference between the two logits
    return net.eval()


def _timm_logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    cfg = net.pretrained_cfg
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        return net((x - mean) / std)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, tuple[Path, nn.Module]]:
    """Each family saved as timm saves it: ``torch.save(net.state_dict())`` (the ViT as safetensors)."""
    root = tmp_path_factory.mktemp("timm")
    out = {}
    for name in FAMILIES:
        net = _timm_net(name)
        if name.startswith("vit"):
            path = root / f"{name}.safetensors"
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)
        else:
            path = root / f"{name}.pth"
            torch.save(net.state_dict(), path)
        out[name] = (path, net)
    return out


@pytest.mark.parametrize("name", list(FAMILIES))
def test_a_state_dict_saved_by_timm_loads_with_timms_logits(saved, name: str, tmp_path: Path) -> None:
    path, net = saved[name]
    size = FAMILIES[name]
    model = create_model(f"timm:{name}", weights=str(path))  # 2 classes read from the file
    assert not model.training and model.num_classes == 2
    assert model.fst_meta == {"name": f"timm:{name}", "kwargs": {"num_classes": 2}}
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(5))
    expected = _timm_logits(net, x)
    assert (expected[:, 0] - expected[:, 1]).abs().min() > 1e-3  # the two classes differ
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), expected, rtol=1e-5, atol=1e-5)
    assert model.forward_features(x).shape == (2, net.num_features)
    # fstmatch's own format keeps the inferred class count; load_model with --arch reads timm's file
    save_model(model, tmp_path / "m.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path / "m.safetensors")(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(load_model(path, arch=f"timm:{name}")(x), expected, rtol=1e-5, atol=1e-5)


def test_the_models_own_normalisation(saved) -> None:
    """legacy_xception is trained on mean = std = 0.5 inputs, resnet18 on ImageNet's."""
    xcep = create_model("timm:legacy_xception", weights=str(saved["legacy_xception"][0]))
    res = create_model("timm:resnet18", weights=str(saved["resnet18"][0]))
    torch.testing.assert_close(xcep.normalize.mean.flatten(), torch.full((3,), 0.5))
    torch.testing.assert_close(res.normalize.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))


def test_wrong_class_count_and_unknown_names(saved, tmp_path: Path) -> None:
    path = saved["resnet18"][0]
    with pytest.raises(UserError, match=r"(?s)does not fit model .timm:resnet18.*shape fc.weight"):
        create_model("timm:resnet18", num_classes=3, weights=str(path))  # asked for 3, the file has 2
    with pytest.raises(UserError, match="timm could not create 'nosuch'"):
        create_model("timm:nosuch")
    with pytest.raises(UserError, match="timm model name missing"):
        create_model("timm:")


def test_behind_the_roles_and_round_trip(tmp_path: Path) -> None:
    det = create_model("det", arch="timm:resnet18").eval()
    assert det(torch.rand(1, 3, 32, 32)).shape == (1, 2)
    fst = create_model("fstmatching", num_identities=4, arch="timm:resnet18", head_hidden=3)
    assert fst(torch.rand(2, 3, 32, 32)).shape == (2, 2) and fst.num_features == 1024
    save_model(det, tmp_path / "det.safetensors")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path / "det.safetensors")(x), det(x))
        # the adapter's own "model." keys are not mistaken for a wrapper prefix
        fresh = load_weights(create_model("det", arch="timm:resnet18"), tmp_path / "det.safetensors").eval()
        torch.testing.assert_close(fresh(x), det(x))
    with pytest.raises(UserError, match="width=16 applies to the built-in ResNets only"):
        create_model("det", arch="timm:resnet18", width=16)


def test_adapter_without_timm_is_a_user_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(UserError, match=r"need timm \(pip install 'fstmatch\[timm\]'\)"):
        create_model("timm:resnet18", num_classes=2)


# -- the CLI on timm's files ----------------------------------------------------------------


@pytest.fixture
def manifest(crop_manifest) -> Path:
    return crop_manifest([("real", "003", 0, 3, 3), ("Deepfakes", "003_017", 1, 3, 17)])


@pytest.mark.parametrize("name", list(FAMILIES))
def test_fstmatch_test_and_explain_on_timm_files(saved, name: str, manifest: Path, tmp_path: Path, capsys) -> None:
    path = saved[name][0]
    canvas = FAMILIES[name]
    arch = f"timm:{name}"
    out = tmp_path / "metrics.json"
    code = main(["test", "--data", str(manifest), "--checkpoint", str(path), "--arch", arch,
                 "--canvas", str(canvas), "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["arch"] == arch and result["overall"]["n"] == 2

    maps = tmp_path / "maps"
    code = main(["explain", "--checkpoint", str(path), "--arch", arch, "--data", str(manifest), "--out", str(maps),
                 "--canvas", str(canvas), "--grid", "2", "--budget", "2", "--no-progress", "--no-overlay"])
    assert code == 0, capsys.readouterr().err
    model = load_model(path, arch=arch)

    for row in read_manifest(manifest):
        face = torch.from_numpy(load_face(row, manifest.parent, geometry=Geometry(canvas=canvas))[0]).permute(2, 0, 1)[None].float() / 255
        m = read_maps(maps / f"{row['id'].replace('/', '__')}.npz")
        k = int(m.target[0])
        assert m.values.shape == (1, 2, 2) and k == row["label"]
        with torch.no_grad():
            gap = float(model(face)[0, k] - model(torch.zeros_like(face))[0, k])
        # efficiency: the four cells add up to v(face) - v(black) of timm's logit
        assert float(m.values.sum()) == pytest.approx(gap, rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_explainers_on_timm_models(saved, name: str) -> None:
    """Grad-CAM reads the deepest conv layer as fine as the 4x4 grid (64 px: resnet18's layer3 is
    4x4, layer4 2x2; Xception: block12 4x4 up to its last separable conv, then pooled to 2x2; on the ViT the only conv layer, its
    patch embedding); IG's pixels add up to f(x) - f(black) on all three."""
    pytest.importorskip("pytorch_grad_cam")
    from fstmatch.explain.attribution import attribute

    model = create_model(f"timm:{name}", weights=str(saved[name][0]))
    size = FAMILIES[name]
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(7))
    layer = {"resnet18": "model.layer3", "legacy_xception": "model.block12.rep.4",
             "vit_tiny_patch16_224": "model.patch_embed.proj"}[name]
    for k in (0, 1):
        cam = attribute("gradcam", model, x, k, grid=4)
        assert cam.layer == layer and cam.pixels.shape == (1, size, size) and cam.cells.shape == (1, 4, 4)
        assert 0 <= float(cam.pixels.min()) <= float(cam.pixels.max()) <= 1 + 1e-6
    ig = attribute("ig", model, x, 1, steps=16)
    with torch.no_grad():
        gap = float(model(x)[0, 1] - model(torch.zeros_like(x))[0, 1])
    assert float(ig.pixels.sum()) == pytest.approx(gap, rel=0.1, abs=0.05)
