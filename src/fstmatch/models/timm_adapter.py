"""Optional adapter: ``create_model("timm:<name>", num_classes=..., pretrained=..., weights=...)`` wraps a timm
backbone behind the same interface as the built-in ResNets ([0, 1] input normalised inside,
``forward_features`` -> pooled (N, C), ``forward_head``). timm is not a dependency: without it the
name raises a :class:`UserError` saying how to install it.

``weights=PATH``: a state dict of the timm model itself (what ``torch.save(timm_model.state_dict())``
writes, ``.pth`` read with ``weights_only=True`` or ``.safetensors``), loaded strictly, classifier
included; without ``num_classes`` the classifier takes the size it has in the file (so
``--arch timm:<name>`` loads a 2-class detector), recorded in ``model.fst_inferred_kwargs`` for
``save_model``. ``pretrained=PATH`` initialises the backbone and skips a classifier of another size.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from torch import Tensor, nn

from fstmatch.errors import UserError
from fstmatch.models.layers import IMAGENET_MEAN, IMAGENET_STD, ImageNormalize
from fstmatch.models.registry import register_prefix
from fstmatch.models.weights import load_pretrained, load_weights, read_state_dict, strip_wrapper_prefixes


def _import_timm() -> ModuleType:
    try:
        return importlib.import_module("timm")
    except ImportError as e:
        raise UserError(
            f"timm:<name> models need timm (pip install 'fstmatch[timm]'); importing it failed: {e}"
        ) from e


class TimmBackbone(nn.Module):
    """A timm model as an fstmatch backbone; the timm model is ``self.model`` (keys ``model.*``).

    ``forward_features(x)``: (N, 3, H, W) in [0, 1] -> pooled pre-logits (N, num_features);
    ``forward_head(f)``: timm's classifier (identity when ``num_classes=0``).
    Normalisation uses the model's ``pretrained_cfg`` mean/std (ImageNet's by default).
    """

    def __init__(
        self, name: str, num_classes: int | None = None, pretrained: str | None = None,
        weights: str | None = None, **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        timm = _import_timm()
        state = read_state_dict(weights) if weights is not None else None
        self.fst_inferred_kwargs: dict[str, Any] = {}
        infer = num_classes is None and state is not None
        num_classes = 1000 if num_classes is None else num_classes
        try:
            self.model = timm.create_model(
                name, pretrained=pretrained == "imagenet", num_classes=num_classes, **timm_kwargs
            )
        except RuntimeError as e:  # unknown model name, or a failed download
            raise UserError(f"timm could not create {name!r}: {e}") from e
        except OSError as e:
            raise UserError(f"timm could not fetch pretrained weights for {name!r} (no network?): {e}") from e
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        if infer:
            found = _classes_in(self.model, cfg, state)
            if found != num_classes:
                self.model.reset_classifier(found)
                num_classes = self.fst_inferred_kwargs["num_classes"] = found
        self.normalize = ImageNormalize(cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD))
        self.num_features = int(self.model.num_features)
        self.num_classes = num_classes
        if pretrained not in (None, "imagenet"):
            classifier = cfg.get("classifier", "fc")
            load_pretrained(self.model, pretrained, classifier_prefixes=(f"{classifier}.",))
        if state is not None:
            load_weights(self.model, state, where=str(weights), arch=f"timm:{name}")
            self.eval()

    def forward_features(self, x: Tensor) -> Tensor:
        maps = self.model.forward_features(self.normalize(x))
        return self.model.forward_head(maps, pre_logits=True)

    def forward_head(self, f: Tensor) -> Tensor:
        return self.model.get_classifier()(f)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _classes_in(model: nn.Module, cfg: dict[str, Any], state: dict[str, Any]) -> int:
    """The number of classes of ``state``'s classifier (the key named by timm's
    ``pretrained_cfg["classifier"]``); the model's own when the file has no such key (the strict
    load then names what is wrong)."""
    classifier = cfg.get("classifier", "fc")
    if isinstance(classifier, (list, tuple)):
        classifier = classifier[0]
    weight = strip_wrapper_prefixes(state, list(model.state_dict())).get(f"{classifier}.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else int(model.num_classes)


def create_timm(name: str, **kwargs: Any) -> TimmBackbone:
    if not name:
        raise UserError("timm model name missing: use timm:<name>, e.g. timm:resnet18")
    return TimmBackbone(name, **kwargs)


register_prefix("timm", create_timm)
