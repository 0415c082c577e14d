"""Pixel attribution maps from well-kept libraries, beside the Shapley engine, under one name space.

>>> from fstmatch.explain.attribution import attribute, list_explainers
>>> res = attribute("gradcam", model, images, targets, grid=16)  # images (N, 3, H, W) in [0, 1]
>>> res.pixels.shape, res.cells.shape                               # (N, H, W), (N, 16, 16)

Explainers (:data:`EXPLAINERS`; docs/explain.md, "Other explainers"):

- ``shapley``: :func:`fstmatch.explain.shapley` (the paper's quantity and fstmatch's default);
  cell values are its map, pixels spread each cell's value evenly over the cell's pixels.
- ``gradcam``, ``gradcam++``: pytorch-grad-cam's ``GradCAM`` / ``GradCAMPlusPlus`` (extra
  ``gradcam``) on one layer, chosen by :func:`choose_cam_layer` unless ``layer=`` names one.
  Unsigned, each map scaled to [0, 1] by pytorch-grad-cam (ReLU, minus the minimum, over the maximum).
- ``ig``: captum's ``IntegratedGradients`` from the black (all-zero) image, the Shapley engine's
  baseline; signed, in logit units: the pixels sum to ``f(x) − f(0)`` up to the path integral's error.
- ``occlusion``: captum's ``Occlusion`` with the grid cell as window and stride, occluded to black:
  a cell's value is ``f(x) − f(x with the cell black)``; signed, logit units.
- ``saliency``: captum's ``Saliency`` (Simonyan et al. 2014): ``|∂f/∂x|``, maximum over the colour
  channels; unsigned, logit units per unit of pixel value.

**Pixel → cell rule.** ``cells[n, i, j]`` is the *sum* of ``pixels[n]`` over the pixels of cell
``(i, j)`` (rows ``floor(i·H/G) .. floor((i+1)·H/G)``, columns likewise), so additive attributions
(IG, occlusion, Shapley) keep their total: the cells of an image sum to its pixels' sum.

**What is explained.** ``f`` is the target logit (pre-softmax) of ``model(x)`` for ``x`` float
(N, 3, H, W) in [0, 1], as in the Shapley engine. A model with a single output logit ``z`` (shape
(N,) or (N, 1)) is read as a binary classifier: target 1 explains ``z``, target 0 explains ``−z``.
A model in train mode is evaluated in eval mode for the call (with a warning) and restored.
"""

from __future__ import annotations

import importlib
import inspect
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from fstmatch.errors import UserError
from fstmatch.explain._core import shapley as _shapley_fn

# -- result --------------------------------------------------------------------------------------


@dataclass
class AttributionResult:
    """Attribution maps of N images.

    Attributes:
        pixels: (N, H, W) float64 at input resolution. Units: target-logit units per pixel for
            ``ig``, ``occlusion`` and ``shapley`` (signed); [0, 1] for Grad-CAM maps; ``|∂f/∂x|`` for
            ``saliency``.
        cells: (N, G, G) float64, the sum of ``pixels`` over each grid cell; ``None`` without ``grid``.
        explainer: the registry name that produced the maps.
        seconds: (N,) float64 wall seconds per map (a batch's time divided by its images).
        signed: whether values can be negative (``False``: Grad-CAM, Grad-CAM++, saliency).
        targets: (N,) int64 the explained class of each image.
        grid: G, or ``None``.
        layer: the module name Grad-CAM read (``None`` for the other explainers).
        extra: explainer-specific details (e.g. ``shapley``'s ``stderr`` and ``n_forward``).
    """

    pixels: Tensor
    cells: Tensor | None
    explainer: str
    seconds: Tensor
    signed: bool
    targets: Tensor
    grid: int | None = None
    layer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.pixels.shape[0]


# -- shared helpers --------------------------------------------------------------------------------


def pixels_to_cells(pixels: Tensor, grid: int) -> Tensor:
    """Sum of ``pixels`` (N, H, W) over each of the G×G cells -> (N, G, G) float64; cell ``(i, j)``
    spans rows ``floor(i·H/G) .. floor((i+1)·H/G)`` and columns likewise (the plain tiling when
    G divides H, as in the Shapley engine and ``fstmatch.hypotheses.truth.pool_to_grid``)."""
    p = pixels.detach().to("cpu", torch.float64)
    n, h, w = p.shape
    if isinstance(grid, bool) or not isinstance(grid, int) or not 1 <= grid <= min(h, w):
        raise UserError(f"grid must be an integer from 1 to {min(h, w)} for {h}x{w} maps, got {grid!r}")
    if h % grid == 0 and w % grid == 0:
        return p.reshape(n, grid, h // grid, grid, w // grid).sum(dim=(2, 4))
    rows = [(i * h) // grid for i in range(grid + 1)]
    cols = [(j * w) // grid for j in range(grid + 1)]
    out = torch.empty(n, grid, grid, dtype=torch.float64)
    for i in range(grid):
        for j in range(grid):
            out[:, i, j] = p[:, rows[i] : rows[i + 1], cols[j] : cols[j + 1]].sum(dim=(1, 2))
    return out


def cells_to_pixels(cells: Tensor, size: tuple[int, int]) -> Tensor:
    """Spread each cell's value evenly over its pixels: (N, G, G) -> (N, H, W), so that
    :func:`pixels_to_cells` gives ``cells`` back."""
    c = cells.detach().to("cpu", torch.float64)
    g = c.shape[1]
    h, w = size
    # the cell row (column) of each pixel row (column), with pixels_to_cells' boundaries
    rows = torch.bucketize(torch.arange(h), torch.tensor([(i * h) // g for i in range(1, g)]), right=True)
    cols = torch.bucketize(torch.arange(w), torch.tensor([(j * w) // g for j in range(1, g)]), right=True)
    area = torch.bincount(rows, minlength=g).double()[:, None] * torch.bincount(cols, minlength=g).double()[None]
    return (c / area)[:, rows][:, :, cols]


class _Logits(nn.Module):
    """``model`` with its output as (N, K) logits: a single logit ``z`` becomes ``[−z, z]``."""

    def __init__(self, model: nn.Module | Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.model = model
        #: whether the model's own output is already (N, K) logits (set by the first forward)
        self.native: bool | None = None

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        if self.native is None:
            self.native = isinstance(out, Tensor) and out.ndim == 2 and out.shape[1] > 1
        if not isinstance(out, Tensor):
            raise UserError(f"the model must return a logits tensor (N, K), got {type(out).__name__}")
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2:
            raise UserError(f"the model must return logits (N, K) or (N,), got shape {tuple(out.shape)}")
        return torch.cat([-out, out], dim=1) if out.shape[1] == 1 else out


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise UserError(f"images must be a float tensor (N, 3, H, W) in [0, 1], got {got}")
    if images.shape[0] == 0:
        raise UserError("images is empty (N = 0)")


def _targets(targets: Tensor | Sequence[int] | int, n: int, classes: int) -> Tensor:
    if isinstance(targets, int) and not isinstance(targets, bool):
        t = torch.full((n,), targets, dtype=torch.long)
    else:
        t = torch.as_tensor(targets)
        if t.is_floating_point() or t.dtype == torch.bool:
            raise UserError(f"targets must be integer class indices, got dtype {t.dtype}")
        t = t.reshape(-1).long().cpu()
    if t.numel() != n:
        raise UserError(f"targets has {t.numel()} entries for {n} images")
    if (t < 0).any() or (t >= classes).any():
        raise UserError(f"targets must be class indices in 0..{classes - 1}, got {t.tolist()}")
    return t


#: how to install what an explainer imports
_INSTALL = {"pytorch_grad_cam": "pip install 'fstmatch[gradcam]'", "captum": "pip install captum, or 'fstmatch[test]'"}


def _import(module: str) -> ModuleType:
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UserError(f"this explainer needs {package} ({_INSTALL[package]}); importing it failed: {e}") from e


# -- Grad-CAM layer choice ----------------------------------------------------------------------------


def map_layers(model: nn.Module, image: Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Modules that output a 4-D map (N, C, h, w), in the order their forwards *finish* on one probe
    image, with their output shape: the layers Grad-CAM can read without a reshape."""
    found: list[tuple[str, tuple[int, ...]]] = []
    hooks = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
            if isinstance(out, Tensor) and out.ndim == 4:
                found.append((name, tuple(out.shape)))

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(image[:1])
    finally:
        for h in hooks:
            h.remove()
    return found


def choose_cam_layer(model: nn.Module, image: Tensor, grid: int | None) -> str:
    """The layer Grad-CAM reads by default: among modules that contain a ``Conv2d`` (or are one)
    and output a 4-D map, the one whose forward finishes **last** (the deepest) among those whose
    map is at least as fine as the grid (``h >= G`` and ``w >= G``; any size without a grid).
    For the container and its last child finishing together (``layer3`` and ``layer3.1``) the
    outer one is taken; their maps are the same tensor.

    Raises UserError, naming the 4-D layers (or, with none, the modules) that ``layer=`` can name.
    """
    modules = dict(model.named_modules())
    has_conv = {n for n, m in modules.items() if any(isinstance(s, nn.Conv2d) for s in m.modules())}
    layers = map_layers(model, image)
    conv = [(n, s) for n, s in layers if n in has_conv]
    fine = [(n, s) for n, s in conv if grid is None or (s[2] >= grid and s[3] >= grid)]
    if fine:
        return fine[-1][0]
    if conv:
        sizes = ", ".join(f"{n} {s[2]}x{s[3]}" for n, s in conv[-8:])
        raise UserError(f"no convolutional layer of this model has a map as fine as the {grid}x{grid} grid "
                        f"(deepest ones: {sizes}); use a coarser grid or name one with layer=")
    names = list(dict.fromkeys(n for n, _ in layers)) or [n for n in modules if n][:40]
    raise UserError(
        "Grad-CAM needs a convolutional layer and this model has none; name the layer with layer=... "
        f"(and, for token outputs such as a ViT's, reshape_transform=...). Layers it could use: {', '.join(names)}"
    )


def _resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    if isinstance(layer, nn.Module):
        for name, m in model.named_modules():
            if m is layer:
                return name, m
        raise UserError("layer= is a module that is not part of the model")
    try:
        return layer, model.get_submodule(layer)
    except AttributeError as e:
        names = [n for n, m in model.named_modules() if n and isinstance(m, nn.Conv2d)][-20:]
        raise UserError(f"the model has no layer {layer!r}; its last convolutional layers: {', '.join(names)}") from e


# -- the explainers -----------------------------------------------------------------------------------------
# Each takes (model: _Logits, images, targets, grid, layer, kw) and returns (pixels (N, H, W), info dict).

ExplainFn = Callable[[nn.Module, Tensor, Tensor, "int | None", "str | nn.Module | None", dict], tuple[Tensor, dict]]


def _cam(kind: str) -> ExplainFn:
    def run(model: nn.Module, images: Tensor, targets: Tensor, grid: int | None, layer: Any,
            kw: dict) -> tuple[Tensor, dict]:
        lib = _import("pytorch_grad_cam")
        tgt = _import("pytorch_grad_cam.utils.model_targets")
        inner = model.model
        if not isinstance(inner, nn.Module):
            raise UserError("Grad-CAM needs an nn.Module (its layers are hooked), got a plain callable")
        name, module = _resolve_layer(inner, choose_cam_layer(inner, images, grid) if layer is None else layer)
        cls = {"gradcam": lib.GradCAM, "gradcam++": lib.GradCAMPlusPlus}[kind]
        with cls(model=model, target_layers=[module], reshape_transform=kw.pop("reshape_transform", None)) as cam:
            maps = cam(input_tensor=images, targets=[tgt.ClassifierOutputTarget(int(t)) for t in targets])
        return torch.from_numpy(maps).double(), {"layer": name}

    return run


def _ig(model: nn.Module, images: Tensor, targets: Tensor, grid: int | None, layer: Any,
        kw: dict) -> tuple[Tensor, dict]:
    captum = _import("captum.attr")
    steps = int(kw.pop("steps", 32))
    ig = captum.IntegratedGradients(model)
    attr, delta = ig.attribute(images, baselines=torch.zeros_like(images), target=targets.to(images.device),
                               n_steps=steps, method="gausslegendre", return_convergence_delta=True,
                               internal_batch_size=int(kw.pop("batch_size", 64)))
    return attr.detach().sum(1).double().cpu(), {"steps": steps, "convergence_delta": delta.detach().double().cpu()}


def _occlusion(model: nn.Module, images: Tensor, targets: Tensor, grid: int | None, layer: Any,
               kw: dict) -> tuple[Tensor, dict]:
    captum = _import("captum.attr")
    _, c, h, w = images.shape
    if grid is None:
        raise UserError("occlusion occludes grid cells: pass grid=G (a divisor of the image size)")
    if h % grid or w % grid:
        raise UserError(f"occlusion: grid={grid} must divide the image size {h}x{w}")
    ch, cw = h // grid, w // grid
    attr = captum.Occlusion(model).attribute(
        images, sliding_window_shapes=(c, ch, cw), strides=(c, ch, cw), baselines=0.0,
        target=targets.to(images.device), perturbations_per_eval=int(kw.pop("batch_size", 64)))
    # captum gives every feature of a window the window's whole difference; divide by the window's
    # pixels so that a cell's pixels sum to f(x) - f(x with the cell black)
    return attr.detach().mean(1).double().cpu() / (ch * cw), {"window": (ch, cw)}


def _saliency(model: nn.Module, images: Tensor, targets: Tensor, grid: int | None, layer: Any,
              kw: dict) -> tuple[Tensor, dict]:
    captum = _import("captum.attr")
    images = images.detach().clone().requires_grad_(True)
    attr = captum.Saliency(model).attribute(images, target=targets.to(images.device), abs=True)
    return attr.detach().amax(1).double().cpu(), {}


def _shapley(model: nn.Module, images: Tensor, targets: Tensor, grid: int | None, layer: Any,
             kw: dict) -> tuple[Tensor, dict]:
    if grid is None:
        raise UserError("shapley values belong to grid cells: pass grid=G")
    # the model itself where it already gives (N, K) logits: the engine's fast paths recognise it
    res = _shapley_fn(model.model if model.native else model, images, targets, grid=grid, **kw)
    kw.clear()
    pixels = cells_to_pixels(res.values, tuple(images.shape[-2:]))
    return pixels, {"cells": res.values, "stderr": res.stderr, "n_forward": res.n_forward, "estimator": res.method}


@dataclass(frozen=True)
class Explainer:
    """A registered explainer: ``fn`` computes pixel maps; ``signed``: whether values can be < 0."""

    name: str
    fn: ExplainFn
    signed: bool
    description: str
    options: frozenset[str] = frozenset()


EXPLAINERS: dict[str, Explainer] = {
    e.name: e
    for e in [
        Explainer("shapley", _shapley, True, "Shapley values of grid cells (fstmatch.explain.shapley; the default)",
                  frozenset(inspect.signature(_shapley_fn).parameters)
                  - {"forward_func", "inputs", "target", "grid", "renamed"}),
        Explainer("gradcam", _cam("gradcam"), False, "Grad-CAM (pytorch-grad-cam), layer chosen by the grid",
                  frozenset({"reshape_transform"})),
        Explainer("gradcam++", _cam("gradcam++"), False, "Grad-CAM++ (pytorch-grad-cam), layer chosen by the grid",
                  frozenset({"reshape_transform"})),
        Explainer("ig", _ig, True, "Integrated Gradients from the black image (captum)",
                  frozenset({"steps", "batch_size"})),
        Explainer("occlusion", _occlusion, True, "Occlusion of each grid cell to black (captum)",
                  frozenset({"batch_size"})),
        Explainer("saliency", _saliency, False, "gradient magnitude, max over colour channels (captum)"),
    ]
}


def list_explainers() -> list[str]:
    """Names :func:`attribute` accepts."""
    return list(EXPLAINERS)


def attribute(
    name: str,
    model: nn.Module | Callable[[Tensor], Tensor],
    images: Tensor,
    target: Tensor | Sequence[int] | int,
    *,
    grid: int | None = None,
    layer: str | nn.Module | None = None,
    **kw: Any,
) -> AttributionResult:
    """Attribution maps of ``model``'s ``target`` logit for ``images`` (N, 3, H, W) float in [0, 1].

    Args:
        name: one of :func:`list_explainers`.
        target: the class per image (N,) or one int for all.
        grid: G; gives ``cells`` (N, G, G), the sum of the pixel map over each cell. Needed by
            ``shapley`` and ``occlusion``; picks Grad-CAM's layer (:func:`choose_cam_layer`).
        layer: Grad-CAM's layer, a module name (``"layer3"``) or the module; only Grad-CAM reads it.
        **kw: passed on: ``steps`` (ig, default 32), ``batch_size`` (ig, occlusion),
            ``reshape_transform`` (Grad-CAM), any :func:`fstmatch.explain.shapley` argument (shapley).

    Returns:
        :class:`AttributionResult`. Raises UserError for an unknown name, an explainer that does not
        apply (Grad-CAM on a model without a convolutional layer and no ``layer``), bad images,
        targets or grid, an unknown keyword, or a missing extra (the pip command named).
    """
    if name not in EXPLAINERS:
        raise UserError(f"unknown explainer {name!r}; known: {', '.join(EXPLAINERS)}")
    if layer is not None and not name.startswith("gradcam"):
        raise UserError(f"layer= applies to Grad-CAM only, not to {name!r}")
    _check_images(images)
    explainer = EXPLAINERS[name]
    unknown = sorted(set(kw) - explainer.options)
    if unknown:
        raise UserError(f"explainer {name!r} got unknown argument(s) {unknown}; "
                        f"it accepts {sorted(explainer.options) or 'none'}")
    was_training = isinstance(model, nn.Module) and model.training
    if was_training:  # as the Shapley engine: a trained model's BatchNorm must use its statistics
        warnings.warn(f"attribute({name!r}): the model is in train mode; evaluating it in eval mode for this "
                      "call (its mode is restored afterwards)", stacklevel=2)
        model.eval()
    try:
        return _attribute(explainer, _Logits(model), images, target, grid, layer, dict(kw))
    finally:
        if was_training:
            model.train()


def _attribute(explainer: Explainer, wrapped: _Logits, images: Tensor, target: Tensor | Sequence[int] | int,
               grid: int | None, layer: str | nn.Module | None, kw: dict[str, Any]) -> AttributionResult:
    with torch.no_grad():
        classes = wrapped(images[:1]).shape[1]
    targets = _targets(target, images.shape[0], classes)
    if grid is not None:
        pixels_to_cells(torch.zeros(1, *images.shape[-2:]), grid)  # validates grid against the size
    start = time.perf_counter()
    with torch.enable_grad():
        pixels, info = explainer.fn(wrapped, images, targets, grid, layer, kw)
    elapsed = time.perf_counter() - start
    n = images.shape[0]
    cells = info.pop("cells", None)
    if cells is None and grid is not None:
        cells = pixels_to_cells(pixels, grid)
    return AttributionResult(
        pixels=pixels, cells=None if cells is None else cells.double(), explainer=explainer.name,
        seconds=torch.full((n,), elapsed / n, dtype=torch.float64), signed=explainer.signed,
        targets=targets, grid=grid, layer=info.pop("layer", None), extra=info,
    )
