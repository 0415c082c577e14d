"""What a verify run explains and how its Shapley maps are computed, cached and reused.

- :func:`select_images`: the analysed fake frames per method (raw, held out of the encoders' training).
- :func:`counterparts`: the c23/c40 rows of the same frames (hypothesis 3).
- :func:`load_images`: aligned faces (and ground-truth masks) as tensors; c23/c40 aligned with the
  raw frame's landmarks so compression is the only difference between the three versions.
- :class:`MapStore`: Shapley maps per (model, compression), kept in ``DIR/maps/*.npz`` map files
  by image id and written every 30 s of computation and at its end, so an interrupted run resumes
  and hypotheses share maps.
- :func:`load_checkpoint`: a model per role, or a :class:`UserError` naming the ``fstmatch train``
  command that makes it.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fstmatch.data.geometry import Geometry
from fstmatch.errors import UserError
from fstmatch.explain.mapfile import (
    MapSet,
    OldMapFormat,
    concat,
    image_digest,
    read_maps,
    row_info,
    to_uint8,
    write_maps,
)
from fstmatch.hypotheses.config import ImagesConfig, ShapleyConfig

Row = dict[str, Any]

#: How each role's checkpoint is made (shown when it is missing).
TRAIN_COMMANDS: dict[str, str] = {
    "source": "fstmatch train --data {manifest} --model source --compressions raw --set data.holdout=1 --out {path}",
    "target": "fstmatch train --data {manifest} --model target --compressions raw --set data.holdout=1 --out {path}",
    "det": "fstmatch train --data {manifest} --model det --compressions raw --set data.holdout=1 --out {path}",
    "det_paired": "fstmatch train --data {manifest} --model det --compressions raw --set-name paired --out {path}",
    "det_unpaired": "fstmatch train --data {manifest} --model det --compressions raw --set-name unpaired --out {path}",
    "fstmatching": "fstmatch train --data {manifest} --model fstmatching --out {path}",
}

#: The label a role's map explains (docs/method.md §3): det label for detectors, identity labels for encoders.
TARGET_KEY: dict[str, str] = {"source": "source", "target": "target"}


def target_key(role: str) -> str:
    """Manifest key holding the class a model of ``role`` is explained for."""
    return TARGET_KEY.get(role, "label")


def manifest_path(manifest: str | Path | None) -> Path:
    """``manifest.jsonl`` from a file or folder path; :class:`UserError` when absent."""
    if not manifest:
        raise UserError("no manifest given: set `manifest:` in the verify config (the output of `fstmatch prepare`)")
    path = Path(manifest)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise UserError(f"manifest not found: {path} (make it with `fstmatch prepare`)")
    return path


def load_checkpoint(role: str, path: str | None, manifest: str | Path, device: torch.device,
                    arch: str | None = None, geometry: Geometry | None = None) -> nn.Module:
    """The model of ``role`` from ``path`` (run directory or ``.safetensors``; with ``arch``, a plain
    state dict of that architecture), in eval mode. A training run whose input geometry differs
    from ``geometry`` is refused: every map of a run must share one grid over one aligned image."""
    from fstmatch.models import load_model

    hint = TRAIN_COMMANDS[role].format(manifest=manifest, path=path or f"runs/{role}")
    if not path:
        raise UserError(f"checkpoints.{role} is not set in the verify config; train it with:\n  {hint}")
    p = Path(path)
    if not (p.is_file() or (p / "model.safetensors").is_file()):
        raise UserError(f"checkpoint for {role} not found: {p} (no model.safetensors); train it with:\n  {hint}")
    if geometry is not None and (p / "config.yaml").is_file():
        from fstmatch.train import load_run_config

        trained = load_run_config(p).input.geometry().to_dict()
        ours = geometry.to_dict()
        differ = [k for k in ours if trained[k] != ours[k]]
        if differ:
            raise UserError(
                f"checkpoints.{role} ({p}) was trained on other faces than the verify images: "
                + ", ".join(f"{k} {trained[k]!r} vs images.{k} {ours[k]!r}" for k in differ)
                + " (train it with the same input.* keys, or change images.*)"
            )
    return load_model(p, arch=arch).to(device).eval()


def _spread(rows: list[Row], n: int) -> list[Row]:
    """Up to ``n`` rows, one frame per video first (videos in order), then second frames, …"""
    by_video: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_video[r["video"]].append(r)
    queues = [sorted(v, key=lambda r: int(r["frame"])) for _, v in sorted(by_video.items())]
    out: list[Row] = []
    depth = 0
    while len(out) < n and any(depth < len(q) for q in queues):
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out[:n]


def select_images(rows: Sequence[Row], cfg: ImagesConfig) -> dict[str, list[Row]]:
    """The analysed fake frames, per method: raw rows of ``cfg.split``, held out per ``cfg.holdout``."""
    from fstmatch.data import filter_rows, holdout_frames

    pool = filter_rows(list(rows), split=cfg.split, compressions=["raw"])
    if cfg.holdout:
        per_video = int(cfg.holdout) if cfg.holdout >= 1 else float(cfg.holdout)
        _, pool = holdout_frames(pool, per_video=per_video)
    present = sorted({r["method"] for r in pool if r["label"] == 1})
    methods = list(cfg.methods) if cfg.methods else present
    missing = [m for m in methods if m not in present]
    if missing:
        raise UserError(
            f"no {'held-out ' if cfg.holdout else ''}raw fake frames of {', '.join(missing)} in split "
            f"{cfg.split!r} (methods present: {', '.join(present) or 'none'})"
        )
    return {m: _spread([r for r in pool if r["method"] == m and r["label"] == 1], cfg.per_method) for m in methods}


def counterparts(rows: Sequence[Row], chosen: Sequence[Row]) -> tuple[list[tuple[Row, Row, Row]], list[str]]:
    """``(raw, c23, c40)`` row triples of the ``chosen`` raw rows, and the ids of those skipped
    because the frame is missing at some compression."""
    index = {(r["method"], r["video"], int(r["frame"]), r["compression"]): r for r in rows}
    triples, skipped = [], []
    for r in chosen:
        key = (r["method"], r["video"], int(r["frame"]))
        c23, c40 = index.get((*key, "c23")), index.get((*key, "c40"))
        if c23 is None or c40 is None:
            skipped.append(r["id"])
        else:
            triples.append((r, c23, c40))
    return triples, skipped


def load_images(
    rows: Sequence[Row], root: Path, geometry: Geometry, landmarks_from: Sequence[Row] | None = None,
    with_masks: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Faces aligned with ``geometry``, ``(N, 3, H, W)`` float32 in [0, 1], and, when asked, masks
    ``(N, 2, H, W)`` (donor, trace; ``None`` when a row has no ground truth)."""
    from fstmatch.data import load_face

    images, masks = [], []
    for i, row in enumerate(rows):
        ref = landmarks_from[i] if landmarks_from is not None else None
        img, m = load_face(row, root, geometry=geometry, landmarks_from=ref, with_masks=with_masks)
        images.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255)
        masks.append(m)
    x = torch.stack(images) if images else torch.zeros(0, 3, geometry.side, geometry.side)
    if not with_masks or any(m is None for m in masks) or not masks:
        return x, None
    return x, torch.from_numpy(np.stack(masks)).float()


@dataclass
class Maps:
    """Shapley maps of one model on one list of images (rows of ``values`` follow ``ids``)."""

    ids: list[str]
    values: np.ndarray  # (N, G, G), raw Shapley values
    stderr: np.ndarray  # (N, G, G), per-cell standard error of the estimate
    n_forward: int  # forward passes spent on these N maps

    def median_relative_error(self) -> float:
        """Median over the maps of the relative L2 error the estimator predicts, sqrt(sum se²) / ||phi||
        (NaN when no map has a finite one)."""
        flat_v, flat_se = self.values.reshape(len(self.ids), -1), self.stderr.reshape(len(self.ids), -1)
        rel = np.sqrt((flat_se**2).sum(1)) / np.maximum(np.linalg.norm(flat_v, axis=1), 1e-12)
        return float(np.nanmedian(rel)) if np.isfinite(rel).any() else float("nan")


class MapStore:
    """Computes Shapley maps (or another ``explainer``'s, its pixel maps summed over each grid cell)
    and keeps them in ``folder/<name>.npz`` map files (:mod:`fstmatch.explain.mapfile`, the format
    ``fstmatch explain`` writes too), keyed by image id.

    A file is reused only when it was made with the same settings (checkpoint file, its size and
    modification time, grid, budget, estimator, seed, weights dtype, and the geometry); otherwise it is
    recomputed, as is a file of an older map format. Each map also carries a digest of the exact
    input image it was computed on, and is recomputed when the image differs (re-prepared crops,
    changed alignment code: the settings alone would not notice). With every map the file keeps
    the explained image (uint8), v(full), v(empty), the model's logit and softmax score of the
    explained class (``metrics["logit"]``, ``metrics["score"]``) and, when given, the ground-truth
    masks: what ``fstmatch browse`` shows without loading a model.
    """

    def __init__(self, folder: Path, shapley: ShapleyConfig, geometry: Geometry, device: torch.device,
                 progress: bool = True, explainer: str = "shapley") -> None:
        self.folder = Path(folder)
        self.shapley = shapley
        self.explainer = explainer
        self.geometry = geometry
        self.device = device
        self.progress = progress
        #: seconds between two writes of a file during a computation (and always after the last chunk)
        self.flush_seconds = 30.0

    def _settings(self, checkpoint: str, seed: int) -> dict[str, Any]:
        s = self.shapley
        path = Path(checkpoint)
        weights = path if path.is_file() else path / "model.safetensors"
        stat = weights.stat()  # a retrained model in the same place invalidates its maps
        common = {"checkpoint": str(weights.resolve()), "weights": f"{stat.st_size}-{stat.st_mtime_ns}",
                  "grid": s.grid, **self.geometry.to_dict()}
        if self.explainer != "shapley":  # deterministic: no estimator, budget or seed
            return {**common, "explainer": self.explainer}
        return {**common, "budget": s.budget, "estimator": s.estimator, "seed": seed, "weights_dtype": s.weights_dtype}

    def _read(self, path: Path, settings: dict[str, Any]) -> dict[str, MapSet]:
        """The cached maps of ``path`` by id (one-image MapSets); empty when absent, of other
        settings or of an older format."""
        if not path.is_file():
            return {}
        try:
            maps = read_maps(path)
        except OldMapFormat:
            return {}
        if maps.meta.get("settings") != json.loads(json.dumps(settings)):
            return {}
        return {i: maps.subset([k]) for k, i in enumerate(maps.ids)}

    def _write(self, path: Path, cache: dict[str, MapSet]) -> None:
        write_maps(path, concat([cache[i] for i in sorted(cache)]))

    def load(self, name: str) -> MapSet | None:
        """The map file ``name`` as written (``None`` when absent or of an older format)."""
        path = self.folder / f"{name}.npz"
        if not path.is_file():
            return None
        try:
            return read_maps(path)
        except OldMapFormat:
            return None

    def annotate(self, name: str, metrics: dict[str, dict[str, np.ndarray]]) -> None:
        """Add per-image numbers to map file ``name``: ``metrics[metric][image id]`` (a scalar or a
        ``(T,)`` row); images without a value get NaN. Other metrics of the file are kept; a file
        whose numbers do not change is not rewritten."""
        maps = self.load(name)
        if maps is None:
            return
        changed = False
        for metric, by_id in metrics.items():
            if not by_id:
                continue
            shape = np.shape(next(iter(by_id.values())))
            col = np.full((len(maps), *shape), np.nan)
            for k, i in enumerate(maps.ids):
                if i in by_id:
                    col[k] = by_id[i]
            old = maps.metrics.get(metric)
            if old is None or old.shape != col.shape or not np.array_equal(old, col, equal_nan=True):
                maps.metrics[metric] = col
                changed = True
        if changed:
            write_maps(self.folder / f"{name}.npz", maps)

    def get(self, name: str, model: nn.Module, checkpoint: str, rows: Sequence[Row], images: torch.Tensor,
            targets: Sequence[int], desc: str = "", seed_offset: int = 0, masks: torch.Tensor | None = None,
            variant: str | None = None) -> Maps:
        """Maps of ``model`` on ``images`` ``(N, 3, H, W)`` (ids from ``rows``), computing only the
        uncached ones. ``seed_offset`` draws orderings independent of the default ones
        (``shapley.seed + offset``); ``masks`` ``(N, 2, H, W)`` in [0, 1] are kept with the maps;
        ``variant`` marks a set that is not the model's plain maps of its images (``raw_repeat``)."""
        from fstmatch.explain import shapley

        path = self.folder / f"{name}.npz"
        seed = self.shapley.seed + seed_offset
        settings = self._settings(checkpoint, seed)
        cache = self._read(path, settings)
        ids = [r["id"] for r in rows]
        digests = [image_digest(images[k]) for k in range(len(ids))]
        todo = [k for k, i in enumerate(ids) if i not in cache or cache[i].digest != [digests[k]]]
        role = name.rpartition("__")[0] or name
        meta = {"settings": settings, "model": role, "variant": variant, "grid": self.shapley.grid,
                "seed": seed, "weights_dtype": self.shapley.weights_dtype}
        # 32 images a call: the regression estimators' fit is shared by a call's images (22 % of a
        # map's time at 8 a call on the laptop preset's det, 14 % at 32; 2026-12-07, loaded box)
        chunk, last_write = 32, time.monotonic()
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            if self.progress:
                print(f"  shapley {desc or name}: images {start + 1}-{start + len(part)} of {len(todo)}", flush=True)
            x = images[part].to(self.device)
            target = torch.tensor([int(targets[k]) for k in part])
            logit, score = class_scores(model, x, target)
            common = dict(ids=[ids[k] for k in part], target=target.numpy(), digest=[digests[k] for k in part],
                          image=to_uint8(images[part]), info=[row_info(rows[k]) for k in part],
                          masks=None if masks is None else np.rint(masks[part].numpy() * 255).astype(np.uint8),
                          metrics={"logit": logit, "score": score}, geometry=self.geometry.to_dict(), meta=meta)
            if self.explainer == "shapley":
                res = shapley(
                    model, x, target, grid=self.shapley.grid, budget=self.shapley.budget,
                    estimator=self.shapley.estimator, batch_size=self.shapley.batch_size, seed=seed,
                    dtype=torch.bfloat16 if self.shapley.weights_dtype == "bfloat16" else None, progress=self.progress,
                )
                done = MapSet(
                    values=res.values.detach().cpu().numpy(), stderr=res.stderr.detach().cpu().numpy(),
                    v_full=None if res.v_full is None else res.v_full.detach().cpu().numpy(),
                    v_empty=None if res.v_empty is None else res.v_empty.detach().cpu().numpy(),
                    n_forward=res.n_forward.detach().cpu().numpy(), explainer="shapley",
                    estimator=self.shapley.estimator, budget=self.shapley.budget, **common)
            else:  # deterministic maps: a standard error of 0, no forward count
                from fstmatch.explain.attribution import attribute

                att = attribute(self.explainer, model, x, target, grid=self.shapley.grid)
                cells = att.cells.detach().cpu().numpy()
                done = MapSet(values=cells, stderr=np.zeros_like(cells), pixels=att.pixels.float().cpu().numpy(),
                              n_forward=np.zeros(len(part), np.int64), explainer=self.explainer,
                              **{**common, "meta": {**meta, "layer": att.layer, "signed": att.signed}})
            for j in range(len(part)):
                cache[done.ids[j]] = done.subset([j])
            if start + chunk >= len(todo) or time.monotonic() - last_write >= self.flush_seconds:
                self._write(path, cache)  # the faces make a file large: rewritten at most every flush_seconds
                last_write = time.monotonic()
        return Maps(
            ids=ids,
            values=np.concatenate([cache[i].values for i in ids]).astype(np.float64),
            stderr=np.concatenate([cache[i].stderr for i in ids]).astype(np.float64),
            n_forward=int(sum(int(cache[i].n_forward[0]) for i in ids)),  # type: ignore[index]  # set by MapSet
        )


def class_scores(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The logit and the softmax probability of ``targets[i]`` for every image: float64 ``(N,)`` each."""
    with torch.no_grad():
        out = model(images).float().cpu()
    idx = targets.view(-1, 1).long()
    return (out.gather(1, idx).squeeze(1).double().numpy(), out.softmax(dim=1).gather(1, idx).squeeze(1).double().numpy())
