"""One map file format for every explanation fstmatch writes (docs/INTERFACES.md, "Map files").

``fstmatch explain`` (one file per image) and ``fstmatch verify`` (one file per model and
compression, ``DIR/maps/<role>__<comp>.npz``) write it alike with :func:`write_maps`; ``fstmatch
browse`` and verify's cache read it with :func:`read_maps`. A file holds the maps of N >= 1 images
made by one explainer with one setting, together with everything a reader needs to show them: the
explained images themselves (uint8, at the model's input size: no reader re-aligns a face), the
explained class, v(full) and v(empty), and per-image numbers computed by the writer (``metrics``).

An ``.npz`` without pickles (``np.load(allow_pickle=False)``); strings are numpy unicode arrays and
the metadata one JSON string. This module needs only numpy and the standard library.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fstmatch.errors import UserError
from fstmatch.utils.io import atomic_savez

#: The ``format`` string of every map file.
FORMAT = "fstmatch-maps"
#: The version this module writes and reads. Version 1: the files of fstmatch before the one map
#: format (explain's per-image npz with ``values``/``id``/``explained_class``; verify's cache with
#: ``ids``/``settings``/``digests``), which hold no explained image.
FORMAT_VERSION = 2
#: Per-image keys of a manifest row kept in ``info`` (the explorer's gallery and grouping).
INFO_KEYS: tuple[str, ...] = ("id", "method", "compression", "video", "frame", "split", "label", "source", "target")
_METRIC = "metric."


class OldMapFormat(UserError):
    """A map file of an older format (or not a map file): the message says which and what to do."""


@dataclass
class MapSet:
    """The maps of N images by one explainer (rows of every array follow ``ids``).

    Attributes:
        ids: N image ids (manifest ids for fstmatch's own writers).
        values: float32/float64 ``(N, G, G)`` (a grid of cells) or ``(N, K)`` (K concepts): the
            attribution of each cell/concept to the explained logit (Shapley values: logit units).
        target: int64 ``(N,)`` the explained class of each image.
        stderr: like ``values``, per-value standard error (NaN: not measurable), or ``None``.
        pixels: float32 ``(N, H, W)`` pixel-resolution maps (Grad-CAM, integrated gradients...), or ``None``.
        v_full, v_empty: float64 ``(N,)`` the explained logit on the whole image and on the baseline
            (NaN where the explainer does not evaluate them).
        n_forward: int64 ``(N,)`` forward passes spent per image (0: unknown / not counted).
        digest: N strings identifying each explained input image exactly (:func:`image_digest`;
            ``""``: unknown).
        image: uint8 ``(N, H, W, 3)`` RGB the explained images, at the model's input size, or ``None``.
        masks: uint8 ``(N, 2, H, W)`` ground truth (donor, trace) * 255 on the same pixels, or ``None``.
        info: N dicts of the image's manifest keys (:data:`INFO_KEYS`: method, compression, video,
            frame, split, label, source, target), empty when unknown.
        metrics: per-image numbers, ``name -> float64 (N,)`` or ``(N, T)`` (NaN: not computed for
            that image); verify writes ``logit``, ``score`` (softmax probability of ``target``),
            ``qt`` (Q at each threshold, detectors), ``delta`` (H3 stability), ``cos`` (cosine to
            the raw map of the same frame), ``lift`` (ground-truth lift).
        explainer: ``"shapley"`` or the name of another explainer (``"gradcam"``, ...).
        estimator, budget: the Shapley estimator and its budget (``None`` for other explainers).
        geometry: the face alignment of ``image`` (``{"convention", "canvas", "face_width",
            "scale"}``, :class:`fstmatch.data.geometry.Geometry`), or ``None`` for images that were
            not aligned by fstmatch.
        meta: everything else, JSON-ready (``model``: a short model name, ``variant``, ``grid``,
            ``target_kind``, ``thresholds``, the writer's cache ``settings``...).
    """

    ids: list[str]
    values: np.ndarray
    target: np.ndarray
    stderr: np.ndarray | None = None
    pixels: np.ndarray | None = None
    v_full: np.ndarray | None = None
    v_empty: np.ndarray | None = None
    n_forward: np.ndarray | None = None
    digest: list[str] | None = None
    image: np.ndarray | None = None
    masks: np.ndarray | None = None
    info: list[dict[str, Any]] | None = None
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    explainer: str = "shapley"
    estimator: str | None = None
    budget: int | None = None
    geometry: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.ids = [str(i) for i in self.ids]
        self.values = np.asarray(self.values)
        if self.values.dtype != np.float64:
            self.values = self.values.astype(np.float32)
        self.target = np.asarray(self.target, dtype=np.int64).reshape(-1)
        if self.stderr is not None:
            self.stderr = np.asarray(self.stderr, dtype=self.values.dtype)
        if self.pixels is not None:
            self.pixels = np.asarray(self.pixels, dtype=np.float32)
        nan = np.full(n, np.nan)
        self.v_full = nan.copy() if self.v_full is None else np.asarray(self.v_full, dtype=np.float64).reshape(-1)
        self.v_empty = nan.copy() if self.v_empty is None else np.asarray(self.v_empty, dtype=np.float64).reshape(-1)
        self.n_forward = (np.zeros(n, np.int64) if self.n_forward is None
                          else np.asarray(self.n_forward, dtype=np.int64).reshape(-1))
        self.digest = [""] * n if self.digest is None else [str(d) for d in self.digest]
        self.info = [{} for _ in range(n)] if self.info is None else [dict(i) for i in self.info]
        self.metrics = {k: np.asarray(v, dtype=np.float64) for k, v in self.metrics.items()}
        if self.image is not None:
            self.image = np.asarray(self.image)
            if self.image.dtype != np.uint8 or self.image.ndim != 4 or self.image.shape[-1] != 3:
                raise ValueError(f"image must be uint8 (N, H, W, 3), got {self.image.dtype} {self.image.shape}")
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=np.uint8)
        per_image = {"values": self.values, "target": self.target, "stderr": self.stderr, "pixels": self.pixels,
                     "v_full": self.v_full, "v_empty": self.v_empty, "n_forward": self.n_forward,
                     "digest": self.digest, "image": self.image, "masks": self.masks, "info": self.info,
                     **{f"metrics[{k!r}]": v for k, v in self.metrics.items()}}
        bad = [f"{k} {len(v)}" for k, v in per_image.items() if v is not None and len(v) != n]
        if bad:
            raise ValueError(f"a MapSet of {n} ids got per-image arrays of other lengths: {', '.join(bad)}")
        if self.stderr is not None and self.stderr.shape != self.values.shape:
            raise ValueError(f"stderr {self.stderr.shape} does not match values {self.values.shape}")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def grid(self) -> int | None:
        """G of a ``(N, G, G)`` grid map; ``None`` for concept maps."""
        return int(self.values.shape[-1]) if self.values.ndim == 3 and self.values.shape[1] == self.values.shape[2] else None

    def subset(self, index: Sequence[int]) -> MapSet:
        """The images at positions ``index``, in that order (a new MapSet; arrays copied)."""
        idx = np.asarray(list(index), dtype=np.int64)

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        assert self.digest is not None and self.info is not None
        return MapSet(
            ids=[self.ids[i] for i in idx], values=self.values[idx], target=self.target[idx],
            stderr=take(self.stderr), pixels=take(self.pixels), v_full=take(self.v_full),
            v_empty=take(self.v_empty), n_forward=take(self.n_forward), digest=[self.digest[i] for i in idx],
            image=take(self.image), masks=take(self.masks), info=[self.info[i] for i in idx],
            metrics={k: v[idx] for k, v in self.metrics.items()}, explainer=self.explainer,
            estimator=self.estimator, budget=self.budget, geometry=self.geometry, meta=dict(self.meta),
        )


def concat(sets: Sequence[MapSet]) -> MapSet:
    """The images of ``sets`` one after another (same explainer settings: the first set's metadata).

    Optional arrays (stderr, pixels, image, masks) are kept only when every set has them; a metric
    missing from a set is NaN there.
    """
    if not sets:
        raise ValueError("concat needs at least one MapSet")
    first = sets[0]

    def cat(name: str) -> np.ndarray | None:
        parts = [getattr(s, name) for s in sets]
        return None if any(p is None for p in parts) else np.concatenate(parts)

    names = sorted({k for s in sets for k in s.metrics})
    metrics = {}
    for k in names:
        shape = next(s.metrics[k].shape[1:] for s in sets if k in s.metrics)
        metrics[k] = np.concatenate([s.metrics[k] if k in s.metrics else np.full((len(s), *shape), np.nan)
                                     for s in sets])
    return MapSet(
        ids=[i for s in sets for i in s.ids], values=np.concatenate([s.values for s in sets]),
        target=np.concatenate([s.target for s in sets]), stderr=cat("stderr"), pixels=cat("pixels"),
        v_full=cat("v_full"), v_empty=cat("v_empty"), n_forward=cat("n_forward"),
        digest=[d for s in sets for d in (s.digest or [])], image=cat("image"), masks=cat("masks"),
        info=[i for s in sets for i in (s.info or [])], metrics=metrics, explainer=first.explainer,
        estimator=first.estimator, budget=first.budget, geometry=first.geometry, meta=dict(first.meta),
    )


def image_digest(image: Any) -> str:
    """16 hex digits identifying an input image exactly: BLAKE2b of its float32 pixels and shape.

    ``image``: a ``(3, H, W)`` float image in [0, 1], a torch tensor or a numpy array (the digest
    of a tensor and of its ``.numpy()`` agree)."""
    if hasattr(image, "detach"):
        image = image.detach().to("cpu").float().contiguous().numpy()
    data = np.ascontiguousarray(image, dtype=np.float32)
    return hashlib.blake2b(data.tobytes() + str(data.shape).encode(), digest_size=8).hexdigest()


def to_uint8(images: Any) -> np.ndarray:
    """``(N, 3, H, W)`` float images in [0, 1] (tensor or array) as uint8 ``(N, H, W, 3)`` RGB."""
    if hasattr(images, "detach"):
        images = images.detach().to("cpu").float().numpy()
    x = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint(x.transpose(0, 2, 3, 1) * 255.0), 0, 255).astype(np.uint8)


def row_info(row: dict[str, Any]) -> dict[str, Any]:
    """The :data:`INFO_KEYS` of a manifest row (absent keys left out)."""
    return {k: row[k] for k in INFO_KEYS if k in row}


def write_maps(path: str | Path, maps: MapSet) -> Path:
    """Write ``maps`` to ``path`` (an ``.npz``, atomically) in format :data:`FORMAT_VERSION`; returns ``path``."""
    assert maps.digest is not None and maps.info is not None
    meta = {**maps.meta, "explainer": maps.explainer, "estimator": maps.estimator, "budget": maps.budget,
            "geometry": maps.geometry}
    arrays: dict[str, Any] = {
        "format": np.array(FORMAT), "version": np.int64(FORMAT_VERSION), "meta": np.array(json.dumps(meta)),
        "ids": np.array(maps.ids, dtype=str), "values": maps.values, "target": maps.target,
        "v_full": maps.v_full, "v_empty": maps.v_empty, "n_forward": maps.n_forward,
        "digest": np.array(maps.digest, dtype=str), "info": np.array([json.dumps(i) for i in maps.info], dtype=str),
    }
    for name in ("stderr", "pixels", "image", "masks"):
        if getattr(maps, name) is not None:
            arrays[name] = getattr(maps, name)
    for k, v in maps.metrics.items():
        arrays[_METRIC + k] = v
    atomic_savez(path, **arrays)
    return Path(path)


def _old_format_message(path: Path, keys: set[str]) -> str:
    if {"ids", "settings", "digests"} <= keys:
        what = "a verify map cache of map format 1"
        todo = "rerun `fstmatch verify` with the same config into this folder (its maps are recomputed)"
    elif {"values", "id"} <= keys:
        what = "an `fstmatch explain` map of map format 1"
        todo = "rerun `fstmatch explain` into a new --out folder"
    else:
        return f"{path} is not an fstmatch map file (no 'format' key; keys: {', '.join(sorted(keys)) or 'none'})"
    return (f"{path} is {what} (fstmatch before the one map format), without the explained image; this "
            f"fstmatch reads map format {FORMAT_VERSION}: {todo}")


def map_version(path: str | Path) -> int | None:
    """The map format version of ``path`` (1: an fstmatch npz of before the one format), ``None``
    when it is absent or not a map file; reads only the file's index and two small keys."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" in z.files:
                return int(z["version"]) if str(z["format"]) == FORMAT else None
            return 1 if {"values", "id"} <= set(z.files) or {"ids", "settings"} <= set(z.files) else None
    except (OSError, ValueError, KeyError):
        return None


def read_maps(path: str | Path) -> MapSet:
    """The :class:`MapSet` of a map file. Never unpickles. An older format or another npz raises
    :class:`OldMapFormat` (a :class:`UserError`) naming its version and what to rerun; an unreadable
    file a :class:`UserError`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if "format" not in keys or str(z["format"]) != FORMAT:
                raise OldMapFormat(_old_format_message(path, keys))
            version = int(z["version"])
            if version != FORMAT_VERSION:
                raise OldMapFormat(f"{path} is of map format {version}; this fstmatch reads map format "
                                   f"{FORMAT_VERSION} (update fstmatch, or rerun what wrote it)")
            meta = json.loads(str(z["meta"]))
            opt = {k: (z[k] if k in keys else None) for k in ("stderr", "pixels", "image", "masks")}
            maps = MapSet(
                ids=[str(i) for i in z["ids"]], values=z["values"], target=z["target"], v_full=z["v_full"],
                v_empty=z["v_empty"], n_forward=z["n_forward"], digest=[str(d) for d in z["digest"]],
                info=[json.loads(str(i)) for i in z["info"]],
                metrics={k[len(_METRIC):]: z[k] for k in keys if k.startswith(_METRIC)},
                explainer=meta.pop("explainer", "shapley"), estimator=meta.pop("estimator", None),
                budget=meta.pop("budget", None), geometry=meta.pop("geometry", None), meta=meta, **opt,
            )
    except OldMapFormat:
        raise
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read map file {path}: {e}") from e
    return maps
