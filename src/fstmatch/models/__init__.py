"""Models: one registry for backbones (ResNet-18/34/50 with torchvision names, ``timm:<name>``,
DeepfakeBench's detectors ``deepfakebench:xception`` / ``deepfakebench:efficientnetb4``),
role models (``det``, ``source``, ``target``) and FST-Matching, plus the safetensors weights format.

Every model takes float (N, 3, H, W) RGB in [0, 1] and normalises internally.

Typical use::

    model = create_model("det", width=16)
    save_model(model, "run/model.safetensors", extra_meta={"epoch": 3})
    same = load_model("run")  # rebuilt from the file's metadata, eval mode
    theirs = load_model("ckpt_best.pth", arch="deepfakebench:xception")  # a DeepfakeBench state dict

See docs/models.md.
"""

from fstmatch.models import deepfakebench as _deepfakebench  # noqa: F401  (registers "deepfakebench:")
from fstmatch.models import fstmatching as _fstmatching  # noqa: F401  (registers "fstmatching")
from fstmatch.models import resnet as _resnet  # noqa: F401  (registers the ResNets)
from fstmatch.models import roles as _roles  # noqa: F401  (registers det/source/target)
from fstmatch.models import timm_adapter as _timm_adapter  # noqa: F401  (registers "timm:")
from fstmatch.models.fstmatching import FSTMatching
from fstmatch.models.layers import IMAGENET_MEAN, IMAGENET_STD, ImageNormalize
from fstmatch.models.registry import create_model, list_models, register_model
from fstmatch.models.resnet import ResNet
from fstmatch.models.roles import BACKBONES, create_backbone
from fstmatch.models.weights import (
    CHECKPOINT_NAME,
    LoadReport,
    load_model,
    load_pretrained,
    load_weights,
    read_model_meta,
    save_model,
    unwrap_model,
)

__all__ = [
    "BACKBONES",
    "CHECKPOINT_NAME",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FSTMatching",
    "ImageNormalize",
    "LoadReport",
    "ResNet",
    "create_backbone",
    "create_model",
    "list_models",
    "load_model",
    "load_pretrained",
    "load_weights",
    "read_model_meta",
    "register_model",
    "save_model",
    "unwrap_model",
]
