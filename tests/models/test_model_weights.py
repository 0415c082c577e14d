"""Pretrained loading (local files, ImageNet through a patched torch.hub) and the safetensors
checkpoint format written by save_model / read by load_model."""

from __future__ import annotations

import logging
import pickle
import urllib.error
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from fstmatch.errors import UserError
from fstmatch.models import create_model, load_model, load_weights, read_model_meta, save_model
from fstmatch.models.resnet import IMAGENET_URLS
from fstmatch.models.weights import strip_wrapper_prefixes


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    """Every parameter and BN statistic random, so equality tests cannot pass by init alone."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) + (0.5 if "running_var" in name else 0.0))
    return model


class _Touch:
    """Unpickling this creates a file: proof that a loader executed pickle code."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def _assert_same_weights(a: nn.Module, b: nn.Module, skip: str = "fc.") -> None:
    sa, sb = a.state_dict(), b.state_dict()
    for key in sa:
        if not key.startswith(skip):
            assert torch.equal(sa[key], sb[key]), key


def test_pretrained_safetensors_skips_differing_classifier(tmp_path: Path, caplog) -> None:
    source = _randomised(create_model("resnet18", num_classes=1000, width=4), 1)
    path = tmp_path / "imagenet-like.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    with caplog.at_level(logging.WARNING, logger="fstmatch.models.weights"):
        model = create_model("det", width=4, pretrained=str(path))
    _assert_same_weights(source, model)
    assert model.fc.weight.shape == (2, 32)
    assert "fc.weight: imagenet-like.safetensors (1000, 32) vs model (2, 32)" in caplog.text.replace(
        str(path), "imagenet-like.safetensors"
    )
    assert model.fst_meta["kwargs"] == {"width": 4}  # pretrained is not a rebuild argument


def test_pretrained_pth_with_wrapper_prefix_and_container(tmp_path: Path) -> None:
    source = _randomised(create_model("resnet34", num_classes=10, width=4), 2)
    state = {
        f"module.{k}": v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": state, "epoch": torch.tensor(3)}, path)
    model = create_model("resnet34", num_classes=10, width=4, pretrained=str(path))
    _assert_same_weights(source, model, skip="<none>")


def test_pretrained_of_other_architecture_lists_every_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "r34.safetensors"
    save_file(create_model("resnet34", width=4).state_dict(), str(path))
    with pytest.raises(UserError) as err:
        create_model("resnet18", width=4, pretrained=str(path))
    msg = str(err.value)
    assert "unexpected layer1.2.conv1.weight (4, 4, 3, 3)" in msg
    assert "unexpected layer3.5.bn2.running_var (16,)" in msg and "80 mismatch(es)" in msg
    path8 = tmp_path / "w8.safetensors"
    save_file(create_model("resnet18", width=8).state_dict(), str(path8))
    with pytest.raises(UserError, match=r"shape conv1.weight: .* \(8, 3, 7, 7\) vs model \(4, 3, 7, 7\)"):
        create_model("resnet18", width=4, pretrained=str(path8))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_is_refused_never_executed(tmp_path: Path) -> None:
    sentinel = tmp_path / "executed"
    for name, refusal in (
        ("evil.pth", "not a plain tensor state dict"),
        ("evil.safetensors", "not a safetensors file"),
    ):
        path = tmp_path / name
        path.write_bytes(pickle.dumps({"conv1.weight": _Touch(sentinel)}))
        with pytest.raises(UserError, match=refusal):
            create_model("resnet18", width=4, pretrained=str(path))
        with pytest.raises(UserError, match="not a safetensors file"):
            load_model(path)
    assert not sentinel.exists()


def test_pretrained_rejects_non_tensor_state_and_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pt"
    torch.save({"conv1.weight": torch.zeros(1), "note": "hi"}, path)
    with pytest.raises(UserError, match=r"non-tensor entries: \['note'\]"):
        create_model("resnet18", width=4, pretrained=str(path))
    (tmp_path / "w.npz").write_bytes(b"PK\x03\x04")
    with pytest.raises(UserError, match=r"expected a \.safetensors file"):
        create_model("resnet18", width=4, pretrained=str(tmp_path / "w.npz"))
    with pytest.raises(UserError, match="not found"):
        create_model("resnet18", width=4, pretrained=str(tmp_path / "missing.pth"))


def test_imagenet_goes_through_torch_hub_with_torchvision_url(monkeypatch) -> None:
    reference = _randomised(create_model("resnet18", num_classes=1000, width=64), 3)
    calls = []

    def fake_download(url: str, **kwargs):
        calls.append(url)
        return reference.state_dict()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    model = create_model("source", num_identities=5, pretrained="imagenet")
    assert calls == [IMAGENET_URLS["resnet18"]]
    _assert_same_weights(reference, model)

    def offline(url: str, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(UserError, match=r"could not download ImageNet weights.*pretrained=PATH"):
        create_model("det", pretrained="imagenet")
    with pytest.raises(UserError, match="width 64 only"):
        create_model("det", width=16, pretrained="imagenet")


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _randomised(create_model("target", num_identities=6, arch="resnet50", width=2), 4).eval()
    path = save_model(model, tmp_path / "run" / "model.safetensors", extra_meta={"epoch": 7, "metric": 0.5})
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.safetensors"]  # no temp file left
    for where in (path, path.parent):
        loaded = load_model(where)
        assert not loaded.training
        assert loaded.fst_meta == {
            "format": 1,
            "name": "target",
            "kwargs": {"num_identities": 6, "arch": "resnet50", "width": 2},
            "epoch": 7,
            "metric": 0.5,
        }
        x = torch.rand(2, 3, 32, 32)
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert read_model_meta(path)["epoch"] == 7


def test_save_unwraps_ddp_like_wrappers_and_needs_fst_meta(tmp_path: Path) -> None:
    class Wrapper(nn.Module):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    model = create_model("det", width=2)
    save_model(Wrapper(model), tmp_path)  # a directory: writes model.safetensors inside
    assert load_model(tmp_path).fst_meta["name"] == "det"
    with pytest.raises(UserError, match=r"built by fstmatch\.models\.create_model"):
        save_model(nn.Linear(2, 2), tmp_path / "x.safetensors")
    with pytest.raises(UserError, match="override 'name'"):
        save_model(model, tmp_path / "y.safetensors", extra_meta={"name": "other"})


def test_load_refuses_foreign_or_missing_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(UserError, match="without fstmatch metadata"):
        load_model(plain)
    with pytest.raises(UserError, match=r"directory without model\.safetensors"):
        load_model(tmp_path)
    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    torch_file = tmp_path / "model.pt"
    torch.save(create_model("det", width=2).state_dict(), torch_file)  # a zip of pickles
    with pytest.raises(UserError, match="not a safetensors file"):
        load_model(torch_file)


def test_checkpoint_of_other_class_count_names_keys_and_shapes(tmp_path: Path) -> None:
    save_model(create_model("source", num_identities=10, width=2), tmp_path / "src.safetensors")
    other = create_model("source", num_identities=12, width=2)
    with pytest.raises(UserError, match=r"shape fc.weight: .* \(10, 16\) vs model \(12, 16\)") as err:
        load_weights(other, tmp_path / "src.safetensors")
    assert "shape fc.bias" in str(err.value) and "2 mismatch(es)" in str(err.value)
    with pytest.raises(UserError, match=r"missing fc.weight \(2, 16\)"):
        load_weights(
            create_model("det", width=2),
            {k: v for k, v in other.state_dict().items() if not k.startswith("fc.")},
        )


def test_wrapper_prefixes_are_stripped_only_when_every_key_has_them() -> None:
    t = torch.zeros(1)
    assert list(
        strip_wrapper_prefixes({"module._orig_mod.fc.weight": t, "module._orig_mod.conv1.weight": t})
    ) == [
        "fc.weight",
        "conv1.weight",
    ]
    assert list(strip_wrapper_prefixes({"model.fc.weight": t, "conv1.weight": t})) == [
        "model.fc.weight",
        "conv1.weight",
    ]
    assert list(
        strip_wrapper_prefixes({"module.model.head.weight": t}, model_keys=["model.head.weight"])
    ) == ["model.head.weight"]
