"""The stem masker: masked inputs' first-convolution outputs from per-cell contributions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fstmatch.explain import _stem, shapley


class StemNet(nn.Module):
    """A strided 7x7 stem (hand-set weights), ReLU, max-pool and a linear head: ResNet's shape."""

    def __init__(self, seed: int = 0, stems: int = 1, in_ch: int = 3, kernel: int = 7, dilation: int = 1) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.stems = nn.ModuleList(
            nn.Conv2d(in_ch, 6, kernel, stride=2, padding=kernel // 2 * dilation, dilation=dilation) for _ in range(stems))
        for conv in self.stems:
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.2)
                conv.bias.copy_(torch.randn(6, generator=gen))
        self.head = nn.Linear(6 * stems, 3)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(3, 6 * stems, generator=gen))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [F.max_pool2d(F.relu(conv(x)), 2).mean((2, 3)) for conv in self.stems]
        return self.head(torch.cat(feats, 1))


def _no_stem(monkeypatch) -> None:
    monkeypatch.setattr(_stem.StemMasker, "find", classmethod(lambda cls, *a, **k: None))


@pytest.mark.parametrize("mask", ["grid", "shared", "per_image"])
@pytest.mark.parametrize("dilation", [1, 2])
def test_stem_outputs_equal_the_convolution_of_masked_inputs(mask, dilation) -> None:
    torch.manual_seed(0)
    net = StemNet(dilation=dilation)
    x, b = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    grid, labels, players = 4, None, 16
    if mask == "shared":
        labels = torch.randint(0, 5, (32 * 32,))
        labels[:5] = torch.arange(5)
        players = 5
    elif mask == "per_image":
        labels = torch.randint(0, 5, (3, 32 * 32))
        labels[:, :5] = torch.arange(5)
        players = 5
    found = _stem.StemMasker.find(net, (), x, b, labels, grid if mask == "grid" else None, players)
    assert found is not None
    copy_, masker = found
    assert isinstance(copy_.stems[0], _stem.StemSlot) and isinstance(net.stems[0], nn.Conv2d)  # model untouched
    idx = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    coalitions = torch.rand(8, players) < 0.5
    if mask == "grid":
        pix = coalitions.view(8, 1, 4, 1, 4, 1).expand(8, 1, 4, 8, 4, 8).reshape(8, 1, 32, 32)
    else:
        lab = labels.view(1, 32, 32).expand(3, 32, 32) if labels.dim() == 1 else labels.view(3, 32, 32)
        pix = coalitions.gather(1, lab[idx].reshape(8, -1)).view(8, 1, 32, 32)
    with torch.inference_mode():
        expected = net.stems[0](torch.where(pix, x[idx], b[idx]))
        masker.fill(idx, coalitions)
        got = copy_.stems[0].value
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_the_model_copy_runs_from_the_slots_alone() -> None:
    """The copy's input is never read: fed the masker's dummy, it gives the model's outputs."""
    net = StemNet(stems=2)
    x, b = torch.rand(2, 3, 32, 32), torch.zeros(2, 3, 32, 32)
    copy_, masker = _stem.StemMasker.find(net, (), x, b, None, 4, 16)
    full = torch.ones(2, 16, dtype=torch.bool)
    with torch.inference_mode():
        masker.fill(torch.tensor([0, 1]), full)
        torch.testing.assert_close(copy_(masker.model_input(2)), net(x), rtol=1e-5, atol=1e-5)
        masker.fill(torch.tensor([0, 1]), ~full)
        torch.testing.assert_close(copy_(masker.model_input(2)), net(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["spline", "permutation"])
def test_maps_with_the_stem_equal_maps_without(method, monkeypatch) -> None:
    from fstmatch.models import create_model

    torch.manual_seed(1)
    net = create_model("resnet18", num_classes=3, width=8).eval()
    x = torch.rand(3, 3, 32, 32)
    fast = shapley(net, x, [0, 1, 2], grid=4, budget=8, estimator=method, seed=3)
    _no_stem(monkeypatch)
    plain = shapley(net, x, [0, 1, 2], grid=4, budget=8, estimator=method, seed=3)
    scale = plain.values.abs().max()
    torch.testing.assert_close(fast.values, plain.values, rtol=0, atol=1e-5 * float(scale))
    assert torch.equal(fast.n_forward, plain.n_forward)


def test_two_stems_and_a_small_cache(monkeypatch) -> None:
    """FST-Matching's shape (several encoders read the input), with contributions evicted and rebuilt."""
    net = StemNet(stems=2, seed=2)
    x = torch.rand(4, 3, 32, 32)
    monkeypatch.setattr(_stem, "CACHE_BYTES", 1)  # keeps one image at a time
    fast = shapley(net, x, [0, 1, 2, 0], grid=4, budget=4, seed=0)
    _no_stem(monkeypatch)
    plain = shapley(net, x, [0, 1, 2, 0], grid=4, budget=4, seed=0)
    torch.testing.assert_close(fast.values, plain.values, rtol=0, atol=1e-5 * float(plain.values.abs().max()))


def test_refused_where_the_input_is_read_elsewhere_or_it_would_not_pay() -> None:
    class RawToo(StemNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + x.mean((1, 2, 3)).unsqueeze(1)

    class Reused(StemNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + self.stems[0](x).mean((1, 2, 3)).unsqueeze(1)

    x, b = torch.rand(2, 3, 32, 32), torch.zeros(2, 3, 32, 32)
    assert _stem.StemMasker.find(RawToo(), (), x, b, None, 4, 16) is None
    assert _stem.StemMasker.find(Reused(), (), x, b, None, 4, 16) is None
    # a 1x1 stem on 3 channels costs 3 multiply-adds a value: slots cannot beat it
    assert _stem.StemMasker.find(StemNet(kernel=1), (), x, b, None, 4, 16) is None
    # 1-px cells: a 7x7 window sees 49 players, more than 147 multiply-adds can pay for
    assert _stem.StemMasker.find(StemNet(), (), x, b, None, 32, 1024) is None
    same = StemNet()
    same.stems[0] = nn.Conv2d(3, 6, 7, padding="same").eval()  # padding given as a string
    assert _stem.StemMasker.find(same, (), x, b, None, 4, 16) is None
    # no convolution reads the input
    assert _stem.StemMasker.find(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2)).eval(), (), x, b,
                                 None, 4, 16) is None


def test_windows_list_each_positions_players_once() -> None:
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1)
    stem = _stem._Stem(conv, _stem.StemSlot())
    labels = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    seg = stem.windows(labels, 4)  # output 2x2; windows centred on pixels (0,0), (0,2), (2,0), (2,2)
    assert seg.tolist() == [[0, 0, 0, 0], [4, 1, 2, 1], [4, 4, 4, 2], [4, 4, 4, 3]]
