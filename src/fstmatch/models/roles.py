"""Models by role (docs/method.md §5): the detector and the two identity encoders.

Each is a backbone (``arch``: a built-in ResNet or ``timm:<name>``) with the right head size.
They are registered names so a saved checkpoint says what it is (``"det"``, ``"source"``...).
"""

from __future__ import annotations

from torch import nn

from fstmatch.errors import UserError
from fstmatch.models.registry import create_model, register_model

BACKBONES = ("resnet18", "resnet34", "resnet50")


def create_backbone(arch: str, num_classes: int, width: int = 64, pretrained: str | None = None) -> nn.Module:
    """A backbone with ``forward_features`` / ``forward_head`` / ``num_features``.

    ``arch``: one of :data:`BACKBONES` or ``"timm:<name>"``; ``num_classes=0`` gives a pure
    feature extractor. ``width`` applies to the built-in ResNets only.
    """
    if arch.startswith("timm:"):
        if width != 64:
            raise UserError(f"width={width} applies to the built-in ResNets only, not {arch}")
        return create_model(arch, num_classes=num_classes, pretrained=pretrained)
    if arch not in BACKBONES:
        raise UserError(f"unknown arch {arch!r}; choose one of {', '.join(BACKBONES)} or timm:<name>")
    return create_model(arch, num_classes=num_classes, pretrained=pretrained, width=width)


def check_num_identities(role: str, num_identities: int) -> None:
    if not isinstance(num_identities, int) or num_identities < 1:
        raise UserError(
            f"{role}: num_identities must be a positive integer (max identity id + 1), got {num_identities!r}"
        )


@register_model()
def det(arch: str = "resnet18", width: int = 64, pretrained: str | None = None) -> nn.Module:
    """Real/fake detector: logits (N, 2), class 1 = fake."""
    return create_backbone(arch, 2, width, pretrained)


@register_model()
def source(
    num_identities: int, arch: str = "resnet18", width: int = 64, pretrained: str | None = None
) -> nn.Module:
    """Source-identity encoder: logits (N, num_identities) over the source label (docs/method.md §1)."""
    check_num_identities("source", num_identities)
    return create_backbone(arch, num_identities, width, pretrained)


@register_model()
def target(
    num_identities: int, arch: str = "resnet18", width: int = 64, pretrained: str | None = None
) -> nn.Module:
    """Target-identity encoder: logits (N, num_identities) over the target label (docs/method.md §1)."""
    check_num_identities("target", num_identities)
    return create_backbone(arch, num_identities, width, pretrained)
