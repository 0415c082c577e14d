"""Fixtures shared by the estimator tests: a small game with every kind of term, and its images."""

from __future__ import annotations

import pytest
import torch

from .toys import CellGame


@pytest.fixture
def game3() -> CellGame:
    """3x3 game with every kind of term, so sampled marginals vary."""
    return CellGame(3, n_classes=2, seed=1)


@pytest.fixture
def ones12() -> torch.Tensor:
    return torch.ones(2, 3, 12, 12)
