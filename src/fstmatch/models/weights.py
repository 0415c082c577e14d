"""Weights in and out: ImageNet / local pretrained weights, and self-describing safetensors files.

- :func:`load_pretrained` — initialise a model from ImageNet (torchvision URL) or a local
  ``.safetensors`` / ``.pth`` state dict. Wrapper prefixes are stripped; the classifier is skipped
  (and reported) when its shape differs; any other mismatch is one :class:`UserError` listing
  every key with both shapes.
- :func:`save_model` / :func:`load_model` — our checkpoint format: a safetensors file whose
  metadata holds ``{"fstmatch": JSON {"format": 1, "name", "kwargs", ...}}`` so the model is
  rebuilt from the file alone. Loading is strict. Only safetensors is read here: a pickle is
  refused, never unpickled (``.pth`` pretrained files go through ``torch.load(weights_only=True)``,
  which accepts plain tensors only).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from fstmatch.errors import UserError
from fstmatch.models.registry import create_model
from fstmatch.utils.io import atomic_path

log = logging.getLogger(__name__)

META_KEY = "fstmatch"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "model.safetensors"  # the weights file inside a run directory

# Prefixes that training wrappers put in front of every key (DDP, torch.compile, Lightning-style
# ``model.``/``backbone.`` attributes); stripped only when *every* key carries them.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.", "backbone.", "encoder.")
_PTH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
#: How to turn a whole-model pickle into a state dict (done where the model's code lives).
EXPORT_HINT = (
    "export its state dict where the model's code runs, for a file you trust: "
    "python -c \"import torch; m = torch.load('MODEL.p', weights_only=False); "
    "torch.save(m.state_dict(), 'MODEL.pth')\", then pass MODEL.pth"
)
_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: keys loaded, classifier keys skipped (with reasons)."""

    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module under DDP / DataParallel / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


# -- reading files -------------------------------------------------------------------------------


def is_safetensors(path: str | os.PathLike) -> bool:
    """Cheap sniff: 8-byte little-endian header length that fits the file, then a JSON object."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def read_safetensors(
    path: str | os.PathLike, device: str = "cpu"
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, string metadata) of a safetensors file; anything else is a :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    if not is_safetensors(path):
        raise UserError(
            f"{path} is not a safetensors file; fstmatch reads weights only from safetensors "
            "and never unpickles a file (convert it with safetensors.torch.save_file)"
        )
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as e:  # safetensors raises its own SafetensorError and OSError subclasses
        raise UserError(f"cannot read safetensors file {path}: {e}") from e
    return tensors, meta


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` (sniffed by content) or a ``.pth``-like file read with
    ``torch.load(weights_only=True)`` — plain tensors only; ``{"state_dict": {...}}`` is unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pretrained weights file not found: {path}")
    if is_safetensors(path) or path.suffix.lower() == ".safetensors":
        return read_safetensors(path)[0]  # refuses a .safetensors name on other content
    if path.suffix.lower() == ".p":
        raise UserError(
            f"{path} is a whole-model pickle (like DeepfakeBench's .p files): reading it means running "
            f"pickled code, which fstmatch never does. To use it, {EXPORT_HINT}"
        )
    if path.suffix.lower() not in _PTH_SUFFIXES:
        raise UserError(f"{path}: expected a .safetensors file or a {'/'.join(_PTH_SUFFIXES)} state dict")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses anything but tensors and plain containers
        raise UserError(
            f"{path}: not a plain tensor state dict, refused without running it (read with "
            f"weights_only=True: {e}). If it is a whole pickled model, {EXPORT_HINT}"
        ) from e
    return _as_state_dict(obj, str(path))


def _as_state_dict(obj: Any, where: str) -> dict[str, Tensor]:
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            if isinstance(obj.get(key), Mapping):
                return _as_state_dict(obj[key], where)
        bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
        if not bad and obj:
            return dict(obj)
        if bad:
            raise UserError(f"{where}: expected a mapping of tensors; non-tensor entries: {bad[:5]}")
    raise UserError(f"{where}: expected a state dict (a mapping of parameter names to tensors)")


def strip_wrapper_prefixes(state: Mapping[str, Tensor], model_keys: Sequence[str] = ()) -> dict[str, Tensor]:
    """Remove ``module.``/``_orig_mod.``/``model.``/``backbone.``/``encoder.`` while every key has
    it — unless every key of the target model has it too (a timm adapter's own ``model.*``)."""
    state = dict(state)
    keep = {p for p in _WRAPPER_PREFIXES if model_keys and all(k.startswith(p) for k in model_keys)}
    changed = True
    while changed and state:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if prefix not in keep and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


# -- matching a state dict against a model -------------------------------------------------------


def _fmt_shape(t: Tensor) -> str:
    return str(tuple(t.shape))


def match_state_dict(
    model: nn.Module,
    state: Mapping[str, Tensor],
    *,
    skip_prefixes: Sequence[str] = (),
    where: str = "checkpoint",
    arch: str | None = None,
) -> tuple[dict[str, Tensor], list[str]]:
    """Check ``state`` against ``model.state_dict()`` key by key and shape by shape.

    Keys under ``skip_prefixes`` (the classifier) that are missing, unexpected or of another
    shape are skipped and returned as notes; BatchNorm's ``num_batches_tracked`` may be absent
    (older torchvision files). Every other difference goes into one :class:`UserError` naming
    the expected architecture (``arch``, else the model's registered name). Returns (entries to
    load, skip notes).
    """
    own = model.state_dict()
    skipped: list[str] = []
    problems: list[str] = []
    to_load: dict[str, Tensor] = {}

    def skippable(key: str) -> bool:
        return any(key.startswith(p) for p in skip_prefixes)

    for key, mine in own.items():
        theirs = state.get(key)
        if theirs is None:
            if key.endswith("num_batches_tracked"):
                continue
            if skippable(key):
                skipped.append(f"{key}: not in {where}, left as initialised")
            else:
                problems.append(f"missing {key} {_fmt_shape(mine)}")
        elif theirs.shape != mine.shape:
            if skippable(key):
                skipped.append(
                    f"{key}: {where} {_fmt_shape(theirs)} vs model {_fmt_shape(mine)}, left as initialised"
                )
            else:
                problems.append(f"shape {key}: {where} {_fmt_shape(theirs)} vs model {_fmt_shape(mine)}")
        else:
            to_load[key] = theirs
    for key, theirs in state.items():
        if key in own:
            continue
        if skippable(key):
            skipped.append(f"{key} {_fmt_shape(theirs)}: the model has no such parameter, ignored")
        elif not key.endswith("num_batches_tracked"):
            problems.append(f"unexpected {key} {_fmt_shape(theirs)}")
    if problems:
        arch = arch or (getattr(model, "fst_meta", None) or {}).get("name", type(model).__name__)
        shown = problems[:200] + ([f"... and {len(problems) - 200} more"] if len(problems) > 200 else [])
        raise UserError(
            f"{where} does not fit model {arch!r} ({len(problems)} mismatch(es); another architecture, "
            "width or class count?):\n  " + "\n  ".join(shown)
        )
    return to_load, skipped


def load_weights(
    model: nn.Module,
    state_or_path: Mapping[str, Tensor] | str | os.PathLike,
    *,
    where: str | None = None,
    arch: str | None = None,
) -> nn.Module:
    """Load weights into ``model`` strictly (every key, every shape); returns ``model``.
    ``arch`` names the architecture in the error message (default: the model's registered name)."""
    if isinstance(state_or_path, Mapping):
        state, where = dict(state_or_path), where or "state dict"
    else:
        state, where = read_state_dict(state_or_path), where or str(state_or_path)
    target = unwrap_model(model)
    to_load, _ = match_state_dict(
        target, strip_wrapper_prefixes(state, list(target.state_dict())), where=where, arch=arch
    )
    target.load_state_dict(to_load, strict=False)  # completeness was checked above
    return model


def load_pretrained(
    model: nn.Module,
    source: str | os.PathLike,
    *,
    imagenet_url: str | None = None,
    classifier_prefixes: Sequence[str] = ("fc.",),
) -> LoadReport:
    """Initialise ``model`` from ``source``: ``"imagenet"`` (download ``imagenet_url`` through
    ``torch.hub``) or a local file. The classifier is skipped when its shape differs (reported
    in the log and the returned :class:`LoadReport`); everything else must match exactly."""
    if str(source) == "imagenet":
        if imagenet_url is None:
            raise UserError(f"no ImageNet weights are known for {type(model).__name__}; pass a file path")
        try:
            state = torch.hub.load_state_dict_from_url(
                imagenet_url, map_location="cpu", progress=True, check_hash=True
            )
        except Exception as e:  # URLError, HTTPError, hash mismatch, timeouts...
            raise UserError(
                f"could not download ImageNet weights from {imagenet_url} ({type(e).__name__}: {e}). "
                "Without network, download the file elsewhere and pass pretrained=PATH"
            ) from e
        where = imagenet_url
    else:
        state, where = read_state_dict(source), str(source)
    state = strip_wrapper_prefixes(state, list(model.state_dict()))
    to_load, skipped = match_state_dict(model, state, skip_prefixes=classifier_prefixes, where=where)
    model.load_state_dict(to_load, strict=False)
    for note in skipped:
        log.warning("pretrained %s: skipped %s", Path(where).name, note)
    return LoadReport(loaded=sorted(to_load), skipped=skipped)


# -- our checkpoint format -----------------------------------------------------------------------


def save_model(
    model: nn.Module, path: str | os.PathLike, extra_meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights to ``path`` (safetensors, atomically) with
    ``{"format", "name", "kwargs", **extra_meta}`` as JSON in the metadata. The model must come
    from :func:`create_model` (it carries ``fst_meta``); wrappers (DDP, compile) are unwrapped."""
    target = unwrap_model(model)
    meta = getattr(target, "fst_meta", None)
    if not meta or "name" not in meta:
        raise UserError("save_model needs a model built by fstmatch.models.create_model (it has no fst_meta)")
    record: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "name": meta["name"],
        "kwargs": meta.get("kwargs", {}),
    }
    for key, value in (extra_meta or {}).items():
        if key in record:
            raise UserError(f"extra_meta may not override {key!r}")
        record[key] = value
    try:
        text = json.dumps(record)
    except TypeError as e:
        raise UserError(f"extra_meta must be JSON-serialisable: {e}") from e
    # clone: safetensors refuses tensors sharing storage, and the file must not alias live weights
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in target.state_dict().items()}
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={META_KEY: text})
    return path


def read_model_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The ``fstmatch`` metadata of a saved model (without loading the weights)."""
    path = _resolve_checkpoint(path)
    if not is_safetensors(path):
        read_safetensors(path)  # raises the refusal message
    with safe_open(str(path), framework="pt") as f:
        return _parse_meta(f.metadata() or {}, path)


def load_model(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", arch: str | None = None
) -> nn.Module:
    """Rebuild and load a model written by :func:`save_model`. ``path``: the ``.safetensors``
    file or a run directory holding ``model.safetensors``. Returns the model in eval mode, with
    the file's metadata as ``model.fst_meta``.

    With ``arch`` (a registered name such as ``"deepfakebench:xception"``, ``"timm:<name>"`` or
    ``"resnet18"``), ``path`` is instead a plain state dict of that architecture (``.pth`` read
    with ``weights_only=True``, or ``.safetensors``), loaded strictly into ``create_model(arch)``.
    """
    path = _resolve_checkpoint(path)
    if arch is not None:
        return _load_state_dict_model(path, arch).to(map_location).eval()
    if not is_safetensors(path):
        raise UserError(
            f"{path} is not a safetensors file, so not an fstmatch checkpoint (and fstmatch never "
            "unpickles a file). For a DeepfakeBench, timm or other plain state dict, name its "
            "architecture: arch=... in the library, --arch on the command line (e.g. --arch "
            "deepfakebench:xception); it is then read with torch.load(weights_only=True)"
        )
    state, raw_meta = read_safetensors(path)
    meta = _parse_meta(raw_meta, path)
    model = create_model(meta["name"], **meta.get("kwargs", {}))
    to_load, _ = match_state_dict(model, state, where=str(path))
    model.load_state_dict(to_load, strict=False)
    model.fst_meta = meta
    return model.to(map_location).eval()


def _load_state_dict_model(path: Path, arch: str) -> nn.Module:
    """``create_model(arch)`` with the state dict at ``path`` (prefix models take ``weights=``)."""
    if ":" in arch:
        return create_model(arch, weights=str(path))
    return load_weights(create_model(arch), path)


def _resolve_checkpoint(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        if not (path / CHECKPOINT_NAME).is_file():
            raise UserError(f"{path} is a directory without {CHECKPOINT_NAME}")
        return path / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    return path


def _parse_meta(raw: Mapping[str, str], path: Path) -> dict[str, Any]:
    if META_KEY not in raw:
        raise UserError(
            f"{path} is a safetensors file without fstmatch metadata (not written by save_model); "
            "to initialise from plain weights use create_model(name, pretrained=PATH)"
        )
    try:
        meta = json.loads(raw[META_KEY])
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: corrupt fstmatch metadata: {e}") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise UserError(f"{path}: fstmatch metadata lacks a model name")
    if meta.get("format", FORMAT_VERSION) > FORMAT_VERSION:
        raise UserError(f"{path}: written by a newer fstmatch (format {meta['format']} > {FORMAT_VERSION})")
    return meta
