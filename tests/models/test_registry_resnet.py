"""Registry behaviour and the ResNet backbones: torchvision key names, sizes, normalisation."""

from __future__ import annotations

import pytest
import torch

from fstmatch.errors import UserError
from fstmatch.models import IMAGENET_MEAN, IMAGENET_STD, ImageNormalize, ResNet, create_model, list_models


def test_list_models_has_every_entry() -> None:
    assert list_models() == ["det", "fstmatching", "resnet18", "resnet34", "resnet50", "source", "target"]


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(UserError, match=r"unknown model 'resnet19'.*det, fstmatching, resnet18"):
        create_model("resnet19")
    with pytest.raises(UserError, match="unknown model prefix 'hf'"):
        create_model("hf:foo")


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"unknown argument\(s\) \['num_class'\]"):
        create_model("resnet18", num_class=2)
    with pytest.raises(UserError, match=r"needs argument\(s\) \['num_identities'\]"):
        create_model("source")
    with pytest.raises(UserError, match="positive integer"):
        create_model("target", num_identities=0, width=4)
    with pytest.raises(UserError, match="unknown arch 'vgg16'"):
        create_model("det", arch="vgg16")


def test_fst_meta_records_rebuild_arguments_without_pretrained(tmp_path) -> None:
    model = create_model("source", num_identities=7, width=4)
    assert model.fst_meta == {"name": "source", "kwargs": {"num_identities": 7, "width": 4}}
    assert model.fc.out_features == 7


def test_resnet_sizes_match_torchvision() -> None:
    # Parameter counts of torchvision's resnet18/34/50 at 1000 classes.
    counts = {
        name: sum(p.numel() for p in create_model(name).parameters())
        for name in ("resnet18", "resnet34", "resnet50")
    }
    assert counts == {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


def test_resnet_key_names_are_torchvision_names() -> None:
    sd18 = create_model("resnet18").state_dict()
    assert len(sd18) == 122  # torchvision resnet18 state dict, num_batches_tracked included
    assert list(sd18)[:6] == [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
    ]
    assert sd18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd18["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    assert sd18["fc.weight"].shape == (1000, 512)
    assert "layer1.0.downsample.0.weight" not in sd18
    sd50 = create_model("resnet50").state_dict()
    assert len(sd50) == 320
    assert sd50["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd50["layer3.5.conv3.weight"].shape == (1024, 256, 1, 1)
    assert sd50["fc.weight"].shape == (1000, 2048)
    assert not any("normalize" in k for k in sd50)  # mean/std stay out of checkpoints
    net50 = create_model("resnet50", width=4)
    assert net50.layer2[0].conv2.stride == (2, 2) and net50.layer2[0].conv1.stride == (1, 1)  # v1.5


def test_width_keeps_names_and_scales_channels() -> None:
    narrow = create_model("resnet34", width=8, num_classes=3)
    assert list(narrow.state_dict()) == list(create_model("resnet34").state_dict())
    assert narrow.num_features == 64 and narrow.fc.weight.shape == (3, 64)
    assert create_model("resnet50", width=8).num_features == 256


def test_forward_is_head_of_features() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=5, width=4).eval()
    x = torch.rand(3, 3, 64, 64)
    f = model.forward_features(x)
    assert f.shape == (3, 32)
    torch.testing.assert_close(model(x), model.forward_head(f))
    torch.testing.assert_close(model.forward_head(f), f @ model.fc.weight.T + model.fc.bias)
    extractor = create_model("resnet18", num_classes=0, width=4)
    assert extractor(x).shape == (3, 32) and not any(k.startswith("fc.") for k in extractor.state_dict())


def test_normalisation_is_the_first_op() -> None:
    norm = ImageNormalize()
    mean_image = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.equal(norm(mean_image), torch.zeros(1, 3, 2, 2))
    black = norm(torch.zeros(1, 3, 1, 1)).flatten()
    torch.testing.assert_close(black, -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD))

    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=2, width=4).eval()
    x = torch.rand(2, 3, 32, 32)
    expected = model(x)
    model.normalize = torch.nn.Identity()  # feed the already-normalised image instead
    torch.testing.assert_close(model(norm(x)), expected)


def test_normalisation_follows_dtype_and_rejects_wrong_input() -> None:
    model = create_model("resnet18", num_classes=2, width=4).eval().to(torch.float64)
    assert model.normalize.mean.dtype == torch.float64
    assert model(torch.rand(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(UserError, match="float images in"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(UserError, match=r"\(N, 3, H, W\)"):
        model(torch.zeros(3, 32, 32, dtype=torch.float64))


def test_invalid_width() -> None:
    with pytest.raises(UserError, match="width >= 1"):
        create_model("resnet18", width=0)
    assert isinstance(create_model("det", arch="resnet50", width=2), ResNet)
