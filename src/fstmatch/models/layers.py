"""Small layers shared by every model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fstmatch.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNormalize(nn.Module):
    """``(x - mean) / std`` per channel, for x float ``(N, 3, H, W)`` RGB in [0, 1].

    The first op of every model, so callers (and the Shapley baseline of zeros = black pixels)
    never deal with normalisation. mean/std are *non-persistent* buffers: they follow ``.to()``
    but stay out of the state dict, so checkpoints keep torchvision's key set exactly.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:
        if not x.is_floating_point():
            raise UserError(f"models take float images in [0, 1], got dtype {x.dtype} (divide uint8 by 255)")
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            raise UserError(f"models take (N, {self.mean.shape[1]}, H, W) images, got shape {tuple(x.shape)}")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
