"""ResNet-18/34/50 with torchvision's parameter names, so ImageNet state dicts load by key.

Differences from torchvision: the input is RGB in [0, 1] and is normalised inside
(:class:`ImageNormalize`, no state-dict keys); ``width`` scales every stage (64 = torchvision,
smaller for CPU demos, same key names); ``num_classes=0`` replaces ``fc`` by an identity (a pure
feature extractor). Stride sits on the 3x3 conv of a Bottleneck (ResNet v1.5, as torchvision).
"""

from __future__ import annotations

from torch import Tensor, nn

from fstmatch.errors import UserError
from fstmatch.models.layers import ImageNormalize
from fstmatch.models.registry import register_model

IMAGENET_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs plus identity (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand x4, plus identity (ResNet-50)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet on [0, 1] RGB input.

    ``forward_features(x)``: x (N, 3, H, W) -> pooled features (N, num_features);
    ``forward_head(f)``: (N, num_features) -> logits (N, num_classes);
    ``forward(x)`` = both. ``num_features`` = 8 * width * block.expansion (512 / 2048 at width 64).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        width: int = 64,
    ) -> None:
        super().__init__()
        if width < 1 or num_classes < 0:
            raise UserError(
                f"ResNet needs width >= 1 and num_classes >= 0, got width={width}, num_classes={num_classes}"
            )
        self.normalize = ImageNormalize()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = width * 8 * block.expansion
        self.num_classes = num_classes
        self.fc: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        mods = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def _init_weights(self) -> None:
        # torchvision's initialisation: He (fan_out) for convs, identity BatchNorm.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_maps(self, x: Tensor) -> Tensor:
        """Last feature maps before pooling: (N, num_features, H/32, W/32)."""
        x = self.normalize(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features (N, num_features)."""
        return self.avgpool(self.forward_maps(x)).flatten(1)

    def forward_head(self, f: Tensor) -> Tensor:
        """Logits (N, num_classes) from pooled features; identity when ``num_classes=0``."""
        return self.fc(f)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


_ARCHS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


def _build(arch: str, num_classes: int, pretrained: str | None, width: int) -> ResNet:
    from fstmatch.models.weights import load_pretrained

    block, layers = _ARCHS[arch]
    model = ResNet(block, layers, num_classes=num_classes, width=width)
    if pretrained is not None:
        if pretrained == "imagenet" and width != 64:
            raise UserError(f"ImageNet weights exist for width 64 only; {arch} was asked with width={width}")
        load_pretrained(model, pretrained, imagenet_url=IMAGENET_URLS[arch])
    return model


@register_model()
def resnet18(num_classes: int = 1000, pretrained: str | None = None, width: int = 64) -> ResNet:
    """ResNet-18 (BasicBlock [2, 2, 2, 2])."""
    return _build("resnet18", num_classes, pretrained, width)


@register_model()
def resnet34(num_classes: int = 1000, pretrained: str | None = None, width: int = 64) -> ResNet:
    """ResNet-34 (BasicBlock [3, 4, 6, 3])."""
    return _build("resnet34", num_classes, pretrained, width)


@register_model()
def resnet50(num_classes: int = 1000, pretrained: str | None = None, width: int = 64) -> ResNet:
    """ResNet-50 (Bottleneck [3, 4, 6, 3])."""
    return _build("resnet50", num_classes, pretrained, width)
