"""DeepfakeBench detectors by name: ``create_model("deepfakebench:xception", weights=PATH)`` and
``create_model("deepfakebench:efficientnetb4", weights=PATH)``.

``PATH`` is a checkpoint exactly as DeepfakeBench (SCLBD/DeepfakeBench) writes it: ``torch.save``
of its detector module's ``state_dict()`` (``ckpt_best.pth``), whose keys are ``backbone.<...>``
— every key of its backbone module, the unused ones too (Xception's ``adjust_channel.*``). Our
modules have exactly that key set (tested), so loading is strict: a missing, unexpected or
mis-shaped key is a :class:`UserError` naming it and the architecture expected.

What the module computes, for x float ``(N, 3, H, W)`` RGB in [0, 1] (native size 256 px):
``logits (N, 2) = classifier(features((x - 0.5) / 0.5))``, DeepfakeBench's detector forward with
its mean = std = 0.5 normalisation (``config/detector/*.yaml``). ``forward_features`` returns the
pooled features (N, C) that its classifier's linear layer reads (after the ReLU, for Xception),
``forward_head`` that linear layer, ``forward_maps`` the maps before pooling.

- ``xception``: timm's ``legacy_xception`` trunk (the FaceForensics++ Xception that DeepfakeBench's
  ``training/networks/xception.py`` also is: entry flow conv1/conv2, blocks 1-12, separable
  conv3/conv4), whose module names are DeepfakeBench's, with DeepfakeBench's ``last_linear``
  (timm's ``fc``) and unused ``adjust_channel``; ``mode: original``; needs timm
  (``pip install 'fstmatch[deepfakebench]'``). ``dropout`` > 0 gives ``last_linear.1.*`` keys, as
  DeepfakeBench's ``dropout`` option does.
- ``efficientnetb4``: ``efficientnet_pytorch``'s EfficientNet-B4 (the package DeepfakeBench uses,
  an optional extra: ``pip install 'fstmatch[deepfakebench]'``), with DeepfakeBench's changes:
  its stem replaced by a plain ``Conv2d(3, 48, 3, stride=2, bias=False)`` (no "same" padding),
  ``_fc`` removed, a ``last_layer`` Linear(1792, 2) on average-pooled ``extract_features``.

Whole-model pickles (DeepfakeBench's ``.p`` files) are refused: they can only be read by running
pickled code; the message says how to export the state dict where DeepfakeBench runs.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from fstmatch.errors import UserError
from fstmatch.models.layers import ImageNormalize
from fstmatch.models.registry import register_prefix
from fstmatch.models.weights import load_weights

#: DeepfakeBench's normalisation (``mean``/``std`` of its detector configs) and input size.
DFB_MEAN = (0.5, 0.5, 0.5)
DFB_STD = (0.5, 0.5, 0.5)
NATIVE_SIZE = 256



# -- Xception (DeepfakeBench / FaceForensics++ layout) ---------------------------------------


def _import_extra(module: str, why: str) -> ModuleType:
    """``module``, or a UserError saying ``why`` it is needed and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UserError(f"{why} (pip install 'fstmatch[deepfakebench]'); importing {module} failed: {e}") from e


#: The trunk modules taken from timm's ``legacy_xception``, in forward order; their names (and so
#: every key below them) are DeepfakeBench's.
_TRUNK = ("conv1", "bn1", "conv2", "bn2", *(f"block{i}" for i in range(1, 13)), "conv3", "bn3", "conv4", "bn4")


class Xception(nn.Module):
    """DeepfakeBench's Xception backbone (``mode: original``); ``features(x)`` -> (N, 2048, h, w)
    maps for normalised x, ``classifier(maps)`` -> logits.

    The trunk is timm's ``legacy_xception`` (the same FaceForensics++ Xception, module for module:
    its ``conv1``/``bn1``, ``conv2``/``bn2``, ``block1..12`` with ``rep``/``skip``/``skipbn``,
    separable ``conv3``/``conv4`` (``conv1`` depthwise + ``pointwise``), ``bn3``/``bn4``), registered
    here under those same names, so DeepfakeBench's keys load with no remap; only timm's ``fc`` is
    DeepfakeBench's ``last_linear`` (built here), and ``adjust_channel`` (unused by ``mode:
    original``, but in its checkpoints) is kept.
    """

    def __init__(self, num_classes: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        lib = _import_extra("timm.models.xception", "deepfakebench:xception is built from timm's legacy_xception modules")
        net = lib.Xception(num_classes=0)  # no classifier: ours is last_linear
        for name in _TRUNK:
            setattr(self, name, getattr(net, name))
        self.relu = nn.ReLU(inplace=True)
        linear = nn.Linear(2048, num_classes)
        self.last_linear: nn.Module = nn.Sequential(nn.Dropout(dropout), linear) if dropout else linear
        # Unused by mode "original", but in DeepfakeBench's module and so in its checkpoints.
        self.adjust_channel = nn.Sequential(nn.Conv2d(2048, 512, 1, 1), nn.BatchNorm2d(512), nn.ReLU(inplace=True))
        self.num_features = 2048

    def features(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        for i in range(1, 13):
            x = getattr(self, f"block{i}")(x)
        x = self.relu(self.bn3(self.conv3(x)))
        return self.bn4(self.conv4(x))

    def pool(self, maps: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(F.relu(maps), 1).flatten(1)

    def head(self, f: Tensor) -> Tensor:
        return self.last_linear(f)

    def classifier(self, maps: Tensor) -> Tensor:
        return self.head(self.pool(maps))


# -- EfficientNet-B4 (efficientnet_pytorch, DeepfakeBench's changes) --------------------------


class EfficientNetB4(nn.Module):
    """DeepfakeBench's EfficientNet-B4 backbone: ``efficientnet`` (efficientnet_pytorch, plain-conv
    stem, no ``_fc``) and ``last_layer``; ``features`` -> (N, 1792, h, w)."""

    def __init__(self, num_classes: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        lib = _import_extra("efficientnet_pytorch", "deepfakebench:efficientnetb4 needs efficientnet_pytorch, "
                            "the package DeepfakeBench uses")
        # from_name builds what DeepfakeBench's from_pretrained builds, without downloading weights
        self.efficientnet = lib.EfficientNet.from_name("efficientnet-b4")
        self.efficientnet._conv_stem = nn.Conv2d(3, 48, kernel_size=3, stride=2, bias=False)
        self.efficientnet._fc = nn.Identity()
        self.dropout_layer = nn.Dropout(dropout) if dropout else nn.Identity()
        self.last_layer = nn.Linear(1792, num_classes)
        self.num_features = 1792

    def features(self, x: Tensor) -> Tensor:
        return self.efficientnet.extract_features(x)

    def pool(self, maps: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(maps, 1).flatten(1)

    def head(self, f: Tensor) -> Tensor:
        return self.last_layer(self.dropout_layer(f))

    def classifier(self, maps: Tensor) -> Tensor:
        return self.head(self.pool(maps))


# -- the detector: normalisation + backbone, keys "backbone.*" --------------------------------

BACKBONES: dict[str, type[nn.Module]] = {"xception": Xception, "efficientnetb4": EfficientNetB4}


class DeepfakeBenchDetector(nn.Module):
    """A DeepfakeBench detector behind fstmatch's interface; its state dict is DeepfakeBench's
    (``backbone.*``). ``forward(x) = backbone.classifier(backbone.features((x - 0.5) / 0.5))``."""

    def __init__(self, arch: str, num_classes: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.arch = arch
        self.normalize = ImageNormalize(DFB_MEAN, DFB_STD)
        self.backbone = BACKBONES[arch](num_classes=num_classes, dropout=dropout)
        self.num_features = self.backbone.num_features
        self.num_classes = num_classes
        self.native_size = NATIVE_SIZE

    def forward_maps(self, x: Tensor) -> Tensor:
        """Backbone maps before pooling, (N, C, h, w)."""
        return self.backbone.features(self.normalize(x))

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features (N, C) that the classifier's linear layer reads."""
        return self.backbone.pool(self.forward_maps(x))

    def forward_head(self, f: Tensor) -> Tensor:
        return self.backbone.head(f)

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone.classifier(self.forward_maps(x))


def create_deepfakebench(name: str, weights: str | os.PathLike | None = None, num_classes: int = 2,
                         dropout: float = 0.0, **unknown: Any) -> DeepfakeBenchDetector:
    """``deepfakebench:<name>``; ``weights``: a DeepfakeBench ``state_dict`` file, loaded strictly."""
    if name not in BACKBONES:
        raise UserError(
            f"unknown DeepfakeBench detector {name!r}; known: {', '.join(f'deepfakebench:{k}' for k in BACKBONES)}"
        )
    if unknown:
        raise UserError(f"deepfakebench:{name} got unknown argument(s) {sorted(unknown)}; "
                        "it accepts weights, num_classes, dropout")
    model = DeepfakeBenchDetector(name, num_classes=num_classes, dropout=dropout)
    if weights is not None:
        load_weights(model, weights, arch=f"deepfakebench:{name}")
        model.eval()  # a trained detector: BatchNorm must use its running statistics
    return model


register_prefix("deepfakebench", create_deepfakebench)
