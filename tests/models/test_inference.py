"""BatchNorm folding and the inference copy give the eval-mode outputs of the original."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from fstmatch.errors import UserError
from fstmatch.models import create_model, fold_batchnorm, prepare_for_inference, save_model


def _with_bn_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial BN running stats and affine parameters, so folding has something to fold."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            n = bn.num_features
            bn.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            bn.weight.copy_(torch.rand(n, generator=gen) + 0.5)
            bn.bias.copy_(torch.rand(n, generator=gen) - 0.5)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("det", {"width": 4}),
        ("source", {"num_identities": 3, "arch": "resnet50", "width": 2}),
        ("fstmatching", {"num_identities": 3, "width": 2}),
    ],
)
def test_folded_copy_matches_original(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = _with_bn_statistics(create_model(name, **kwargs))
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)


def test_prepare_for_inference_and_refused_save(tmp_path: Path) -> None:
    model = _with_bn_statistics(create_model("det", width=4))
    fast = prepare_for_inference(model)
    assert all(not p.requires_grad for p in fast.parameters())
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(
        fast(x.contiguous(memory_format=torch.channels_last)), model(x), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(UserError, match="save the original model"):
        save_model(fast, tmp_path / "fast.safetensors")
    save_model(model, tmp_path / "orig.safetensors")  # the original still saves
