"""The one model registry: ``@register_model`` entries, ``create_model`` and ``list_models``.

``create_model`` records how a model was built on the model itself (``model.fst_meta``:
``{"name", "kwargs"}``), which is what :func:`fstmatch.models.save_model` writes into the weights
file so :func:`fstmatch.models.load_model` can rebuild the model from the file alone.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable
from typing import Any

from torch import nn

from fstmatch.errors import UserError

ModelFactory = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelFactory] = {}

# ``name`` prefix -> factory taking (suffix, **kwargs); e.g. "timm:resnet50".
_PREFIX_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str | None = None) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering a factory under ``name`` (default: the function's name)."""

    def wrap(fn: ModelFactory) -> ModelFactory:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is registered twice")
        _REGISTRY[key] = fn
        return fn

    return wrap


def register_prefix(prefix: str, factory: Callable[..., nn.Module]) -> None:
    """Route every ``"<prefix>:<suffix>"`` name to ``factory(suffix, **kwargs)``."""
    _PREFIX_FACTORIES[prefix] = factory


def list_models() -> list[str]:
    """Registered model names, sorted (``timm:<name>`` adapters are not listed)."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model: ``create_model("resnet18", num_classes=2)``,
    ``create_model("fstmatching", num_identities=1000)``, ``create_model("timm:convnext_tiny")``,
    ``create_model("deepfakebench:xception", weights="ckpt_best.pth")``.

    Every model takes float ``(N, 3, H, W)`` RGB in [0, 1] and normalises internally.
    Unknown names and unknown keyword arguments raise :class:`UserError`.
    """
    if ":" in name:
        prefix, suffix = name.split(":", 1)
        if prefix not in _PREFIX_FACTORIES:
            raise UserError(
                f"unknown model prefix {prefix!r} in {name!r}; known: {sorted(_PREFIX_FACTORIES)}"
            )
        model = _PREFIX_FACTORIES[prefix](suffix, **kwargs)
    else:
        if name not in _REGISTRY:
            raise UserError(
                f"unknown model {name!r}; choose one of: {', '.join(list_models())} "
                f"(or {', '.join(f'{p}:<name>' for p in sorted(_PREFIX_FACTORIES))})"
            )
        factory = _REGISTRY[name]
        _check_kwargs(name, factory, kwargs)
        model = factory(**kwargs)
    # a factory may infer arguments from the weights (timm: the classifier's size); they rebuild it too
    inferred = getattr(model, "fst_inferred_kwargs", None) or {}
    model.fst_meta = {"name": name, "kwargs": _rebuild_kwargs(name, {**inferred, **kwargs})}
    return model


def _check_kwargs(name: str, factory: ModelFactory, kwargs: dict[str, Any]) -> None:
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise UserError(f"model {name!r} got unknown argument(s) {unknown}; it accepts {sorted(params)}")
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise UserError(f"model {name!r} needs argument(s) {missing}")


def _rebuild_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The kwargs that rebuild the architecture: JSON-able, without ``pretrained`` / ``weights``
    (weights come from the saved file, and re-reading or re-downloading them on load would be wrong)."""
    out = {k: copy.deepcopy(v) for k, v in kwargs.items() if k not in ("pretrained", "weights")}
    try:
        json.dumps(out)
    except TypeError as e:
        raise UserError(
            f"model {name!r}: arguments must be JSON values to be saved with the weights ({e})"
        ) from e
    return out
