"""The result of :func:`fstmatch.explain.shapley` (its own module so that the estimators and the
sharding code can both build one without importing each other)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ShapleyResult:
    """Shapley maps of N images over a G x G grid.

    Attributes:
        values: (N, G, G) float64, raw (target-logit units). For ``permutation`` and ``exact`` the
            cells of an image sum to ``v_full - v_empty`` (efficiency) up to float error.
        stderr: (N, G, G) float64 standard error of each value (0 for ``exact``; NaN when there is
            a single sample: one antithetic pair, one ordering, m = 1).
        n_forward: (N,) int64 forward passes (masked images) spent on each image.
        n_permutations: (N,) int64 orderings used per image (per cell for ``reference``; 0 for exact).
        targets: (N,) int64 the explained class of each image.
        v_full, v_empty: (N,) float64 target logit of the whole image and of the baseline
            (``None`` for ``reference``, which does not evaluate them).
        method, grid, seed, dtype: how the maps were made.
    """

    values: torch.Tensor
    stderr: torch.Tensor
    n_forward: torch.Tensor
    n_permutations: torch.Tensor
    targets: torch.Tensor
    v_full: torch.Tensor | None
    v_empty: torch.Tensor | None
    method: str
    grid: int
    seed: int
    dtype: str = "float32"
    extra: dict = field(default_factory=dict)

    def normalized(self, eps: float = 1e-12) -> torch.Tensor:
        """Maps divided by their L2 norm over the G*G cells (docs/method.md §3): (N, G, G); all-zero maps stay 0."""
        norm = self.values.flatten(1).norm(dim=1).clamp_min(eps)
        return self.values / norm.view(-1, 1, 1)

    @property
    def total_forward(self) -> int:
        """Forward passes spent on all images together."""
        return int(self.n_forward.sum())

    def __len__(self) -> int:
        return self.values.shape[0]
