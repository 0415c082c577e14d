"""The result of :func:`fstmatch.explain.shapley` and the estimators' typed extras (their own module so
that the estimators and the sharding code can both build one without importing each other)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class EstimatorExtras:
    """What an estimator reports beyond values and standard errors (``res.extras``).

    Attributes:
        spline_lambda: (N,) float64, ``spline`` only: the penalty each image's fit used (relative
            to the mean diagonal of the normal matrix); None for the other estimators.
        spline_knots: ``spline`` only: the knots L of the size spline; None otherwise.
        world_size: ranks that shared the call (``torch.distributed``; 1 in one process).
    """

    spline_lambda: torch.Tensor | None = None
    spline_knots: int | None = None
    world_size: int = 1


@dataclass
class ShapleyResult:
    """Shapley values of N images over K players: the G x G cells of a grid or a feature mask's labels.

    Attributes:
        values: float64, raw (target-logit units): (N, G, G) on a grid, (N, K) with a feature mask.
            For ``permutation``, the regressions and ``exact`` the values of an image sum to
            ``v_full - v_empty`` (efficiency) up to float error.
        stderr: like ``values``: standard error of each value (0 for ``exact``; NaN when there is
            a single sample: one antithetic pair, one ordering, m = 1).
        n_forward: (N,) int64 forward passes (masked images) spent on each image.
        n_permutations: (N,) int64 budget used per image: orderings, or orderings' worth of forwards
            for the regressions (per player for ``reference``; 0 for exact).
        targets: (N,) int64 the explained output of each image.
        v_full, v_empty: (N,) float64 target logit of the whole image and of the baseline
            (``None`` for ``reference``, which does not evaluate them).
        method: the estimator's name (``estimator=``).
        grid: cells per side, or None with a feature mask.
        seed, dtype: how the maps were made.
        extras: :class:`EstimatorExtras`.
        feature_mask: (N, H, W) int64 label of each pixel with a feature mask, else None.
        image_size: (H, W) of the explained images.
    """

    values: torch.Tensor
    stderr: torch.Tensor
    n_forward: torch.Tensor
    n_permutations: torch.Tensor
    targets: torch.Tensor
    v_full: torch.Tensor | None
    v_empty: torch.Tensor | None
    method: str
    grid: int | None
    seed: int
    dtype: str = "float32"
    extras: EstimatorExtras = field(default_factory=EstimatorExtras)
    feature_mask: torch.Tensor | None = None
    image_size: tuple[int, int] | None = None

    @property
    def estimator(self) -> str:
        """The estimator that made the maps (the same as ``method``)."""
        return self.method

    def normalized(self, eps: float = 1e-12) -> torch.Tensor:
        """Values divided by their L2 norm over the players (docs/method.md §3), shaped like
        ``values``; all-zero maps stay 0."""
        norm = self.values.flatten(1).norm(dim=1).clamp_min(eps)
        return self.values / norm.view(-1, *[1] * (self.values.ndim - 1))

    def to_pixels(self, normalized: bool = False) -> torch.Tensor:
        """(N, H, W) float64: every pixel carries the value of the player it belongs to (its grid
        cell or its feature-mask label; captum's convention), not a share of it, so the map reads as
        the image's attribution at full resolution. ``normalized``: of the unit-L2 values."""
        v = self.normalized() if normalized else self.values
        if self.image_size is None:
            raise ValueError("this result does not record its image size (made by an older version)")
        h, w = self.image_size
        if self.feature_mask is not None:
            n = v.shape[0]
            return v.gather(1, self.feature_mask.reshape(n, -1)).view(n, h, w)
        g = self.grid
        return v.repeat_interleave(h // g, dim=1).repeat_interleave(w // g, dim=2)

    @property
    def total_forward(self) -> int:
        """Forward passes spent on all images together."""
        return int(self.n_forward.sum())

    def __len__(self) -> int:
        return self.values.shape[0]
