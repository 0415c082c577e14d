"""H1's Q and H3's δ in memory, from shapley() results and a model, against the metrics by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fstmatch.explain import ShapleyInputError, shapley
from fstmatch.hypotheses import q_metric, stability, stability_of_model


class _Weighted(nn.Module):
    """logit = sum of the pixels times a fixed weight image: Shapley value of a cell = its weighted sum."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w, requires_grad=False)
        self.eval()

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1, keepdim=True)


def _cells(x: torch.Tensor, w: torch.Tensor) -> np.ndarray:
    return (x * w).sum(1).unfold(1, 4, 4).unfold(2, 4, 4).sum((-1, -2)).double().numpy()  # (N, 2, 2)


def test_q_from_three_results_equals_q_of_their_values() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 8, 8, generator=gen)
    models = [_Weighted(torch.randn(3, 8, 8, generator=gen)) for _ in range(3)]
    res = [shapley(m, x, 0, grid=2, estimator="exact") for m in models]
    by_hand = [_cells(x, m.w.detach()) for m in models]
    assert q_metric(*res) == pytest.approx(q_metric(*by_hand), abs=1e-6)


def test_delta_of_a_model_on_three_compressions() -> None:
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(3, 8, 8, generator=gen)
    raw = torch.rand(2, 3, 8, 8, generator=gen)
    c23, c40 = raw + 0.05 * torch.rand(2, 3, 8, 8, generator=gen), raw.flip(-1)
    d = stability_of_model(_Weighted(w), raw, c23, c40, target=0, grid=2, estimator="exact")
    expected = stability(_cells(raw, w), _cells(c23, w), _cells(c40, w))
    assert d.delta == pytest.approx(expected, abs=1e-6)
    assert d.per_image.shape == (2,) and len(d.maps) == 3
    with pytest.raises(ShapleyInputError, match="same faces"):
        stability_of_model(_Weighted(w), raw, c23[:1], c40, target=0, grid=2)
