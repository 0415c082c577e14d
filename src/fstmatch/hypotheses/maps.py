"""What a verify run explains and how its Shapley maps are computed, cached and reused.

- :func:`select_images`: the analysed fake frames per method (raw, held out of the encoders' training).
- :func:`counterparts`: the c23/c40 rows of the same frames (hypothesis 3).
- :func:`load_images`: aligned faces (and ground-truth masks) as tensors; c23/c40 aligned with the
  raw frame's landmarks so compression is the only difference between the three versions.
- :class:`MapStore`: Shapley maps per (model, compression), cached in ``DIR/maps/*.npz`` by image
  id and written after every chunk, so an interrupted run resumes and hypotheses share maps.
- :func:`load_checkpoint`: a model per role, or a :class:`UserError` naming the ``fstmatch train``
  command that makes it.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fstmatch.errors import UserError
from fstmatch.hypotheses.config import ImagesConfig, ShapleyConfig
from fstmatch.utils.io import atomic_savez

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
                    arch: str | None = None, images: ImagesConfig | None = None) -> nn.Module:
    """The model of ``role`` from ``path`` (run directory or ``.safetensors``; with ``arch``, a plain
    state dict of that architecture), in eval mode. A training run whose input geometry differs
    from ``images``' is refused: every map of a run must share one grid over one aligned image."""
    from fstmatch.models import load_model

    hint = TRAIN_COMMANDS[role].format(manifest=manifest, path=path or f"runs/{role}")
    if not path:
        raise UserError(f"checkpoints.{role} is not set in the verify config; train it with:\n  {hint}")
    p = Path(path)
    if not (p.is_file() or (p / "model.safetensors").is_file()):
        raise UserError(f"checkpoint for {role} not found: {p} (no model.safetensors); train it with:\n  {hint}")
    if images is not None and (p / "config.yaml").is_file():
        from fstmatch.train import load_run_config

        trained = load_run_config(p).input
        ours = images.geometry()
        differ = [k for k in ours if getattr(trained, k) != ours[k]]
        if differ:
            raise UserError(
                f"checkpoints.{role} ({p}) was trained on other faces than the verify images: "
                + ", ".join(f"{k} {getattr(trained, k)!r} vs images.{k} {ours[k]!r}" for k in differ)
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
    rows: Sequence[Row], root: Path, cfg: ImagesConfig, landmarks_from: Sequence[Row] | None = None,
    with_masks: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Aligned faces ``(N, 3, H, W)`` in [0, 1] and, when asked, masks ``(N, 2, H, W)`` (donor, trace;
    ``None`` when a row has no ground truth)."""
    from fstmatch.data import load_face

    images, masks = [], []
    for i, row in enumerate(rows):
        ref = landmarks_from[i] if landmarks_from is not None else None
        img, m = load_face(row, root, canvas=cfg.canvas, face_width=cfg.face_width, scale=cfg.scale,
                           convention=cfg.convention, landmarks_from=ref, with_masks=with_masks)
        images.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255)
        masks.append(m)
    x = torch.stack(images) if images else torch.zeros(0, 3, cfg.canvas, cfg.canvas)
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
    """Computes Shapley maps and caches them in ``folder/<name>.npz`` keyed by image id.

    A cache file is reused only when it was made with the same settings (checkpoint file, its size
    and modification time, grid, budget, estimator, seed, weights dtype, convention, canvas, face width, scale); otherwise it
    is recomputed. Each cached map also carries a digest of the exact input image it was computed on,
    and is recomputed when the image differs (re-prepared crops, changed alignment code: the settings
    alone would not notice).
    """

    def __init__(self, folder: Path, shapley: ShapleyConfig, images: ImagesConfig, device: torch.device,
                 progress: bool = True) -> None:
        self.folder = Path(folder)
        self.shapley = shapley
        self.images = images
        self.device = device
        self.progress = progress

    def _settings(self, checkpoint: str, seed: int) -> dict[str, Any]:
        s, i = self.shapley, self.images
        path = Path(checkpoint)
        weights = path if path.is_file() else path / "model.safetensors"
        stat = weights.stat()  # a retrained model in the same place invalidates its maps
        return {"checkpoint": str(weights.resolve()), "weights": f"{stat.st_size}-{stat.st_mtime_ns}",
                "grid": s.grid, "budget": s.budget, "estimator": s.estimator, "seed": seed,
                "weights_dtype": s.weights_dtype,
                **i.geometry()}

    def _read(self, path: Path, settings: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray, int, str]]:
        if not path.is_file():
            return {}
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["settings"])) != settings or "digests" not in z:
                return {}
            return {str(i): (v, e, int(n), str(d))
                    for i, v, e, n, d in zip(z["ids"], z["values"], z["stderr"], z["n_forward"], z["digests"])}

    def _write(self, path: Path, settings: dict[str, Any], cache: dict[str, tuple[np.ndarray, np.ndarray, int, str]]) -> None:
        ids = sorted(cache)
        atomic_savez(
            path, ids=np.array(ids), settings=np.array(json.dumps(settings)),
            values=np.stack([cache[i][0] for i in ids]), stderr=np.stack([cache[i][1] for i in ids]),
            n_forward=np.array([cache[i][2] for i in ids], dtype=np.int64),
            digests=np.array([cache[i][3] for i in ids]),
        )

    def get(self, name: str, model: nn.Module, checkpoint: str, rows: Sequence[Row], images: torch.Tensor,
            targets: Sequence[int], desc: str = "", seed_offset: int = 0) -> Maps:
        """Maps of ``model`` on ``images`` (ids from ``rows``), computing only the uncached ones.
        ``seed_offset`` draws orderings independent of the default ones (``shapley.seed + offset``)."""
        from fstmatch.explain import shapley

        path = self.folder / f"{name}.npz"
        seed = self.shapley.seed + seed_offset
        settings = self._settings(checkpoint, seed)
        cache = self._read(path, settings)
        ids = [r["id"] for r in rows]
        digests = [image_digest(images[k]) for k in range(len(ids))]
        todo = [k for k, i in enumerate(ids) if i not in cache or cache[i][3] != digests[k]]
        chunk = 8
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            if self.progress:
                print(f"  shapley {desc or name}: images {start + 1}-{start + len(part)} of {len(todo)}", flush=True)
            res = shapley(
                model, images[part].to(self.device), torch.tensor([int(targets[k]) for k in part]),
                grid=self.shapley.grid, budget=self.shapley.budget, estimator=self.shapley.estimator,
                batch_size=self.shapley.batch_size, seed=seed,
                dtype=torch.bfloat16 if self.shapley.weights_dtype == "bfloat16" else None, progress=self.progress,
            )
            values = res.values.detach().cpu().numpy()
            stderr = res.stderr.detach().cpu().numpy()
            n_forward = res.n_forward.detach().cpu().numpy()
            for j, k in enumerate(part):
                cache[ids[k]] = (values[j], stderr[j], int(n_forward[j]), digests[k])
            self._write(path, settings, cache)
        return Maps(
            ids=ids,
            values=np.stack([cache[i][0] for i in ids]),
            stderr=np.stack([cache[i][1] for i in ids]),
            n_forward=int(sum(cache[i][2] for i in ids)),
        )


def image_digest(image: torch.Tensor) -> str:
    """16 hex digits identifying an input image exactly (BLAKE2b of its float32 pixels and shape)."""
    data = image.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.blake2b(data.tobytes() + str(data.shape).encode(), digest_size=8).hexdigest()
