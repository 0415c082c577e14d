"""From a ``TrainConfig`` to the rows and datasets of a run (thin glue over :mod:`fstmatch.data`)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fstmatch.data.augment import FaceAugment
from fstmatch.errors import UserError
from fstmatch.train.config import TrainConfig
from fstmatch.train.sampler import balance_weights


@dataclass
class TrainData:
    root: Path  # folder of the manifest (row paths are relative to it)
    all_rows: list[dict[str, Any]]  # the whole manifest
    train_rows: list[dict[str, Any]]
    val_rows: list[dict[str, Any]]
    train_set: torch.utils.data.Dataset
    sample_weights: list[float] | None  # for the balancing sampler, or None
    #: the validation faces, built once so that its cache (cfg.cache_mb) lasts across epochs; None: no rows
    val_set: torch.utils.data.Dataset | None = None


def num_identities(rows: list[dict[str, Any]]) -> int:
    """``max id + 1`` over source and target labels of ``rows`` (the whole manifest, so every split's
    identities fit the head)."""
    return max(max(int(r["source"]), int(r["target"])) for r in rows) + 1


class SeededItems(torch.utils.data.Dataset):
    """Wraps a dataset whose items are fetched by ``(index, seed)`` pairs: the global RNGs (python,
    numpy, torch) are seeded with ``seed`` around each item and restored afterwards, so random
    augmentation depends only on the sample's seed, not on worker or resume position."""

    def __init__(self, base: torch.utils.data.Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        augment = getattr(self.base, "augment", None)
        if isinstance(augment, FaceAugment):
            augment.reset()  # the item seed already varies; a per-process call count would not resume
        try:
            return self.base[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


def select_rows(
    rows: list[dict[str, Any]], split: str | None = None, methods: Sequence[str] | None = None,
    compressions: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``split`` at ``compressions`` whose fakes are of ``methods`` (reals always kept).

    A filter that leaves nothing (or, for ``methods``, no fakes) raises :class:`UserError` naming it.
    """
    from fstmatch.data import filter_rows

    rows = filter_rows(rows, split=split, compressions=compressions)
    if methods is None:
        return rows
    fakes = filter_rows([r for r in rows if r["method"] != "real"], methods=methods)
    keep = {id(r) for r in fakes}
    return [r for r in rows if r["method"] == "real" or id(r) in keep]


def build_train_data(cfg: TrainConfig) -> TrainData:
    """Read the manifest, pick train/val rows (splits, set_name, holdout) and build the dataset."""
    from fstmatch.data import (
        AugmentConfig,
        FaceDataset,
        build_augment,
        h2_sets,
        holdout_frames,
        read_manifest,
    )

    d = cfg.data
    if not d.manifest:
        raise UserError("no manifest given: pass --data MANIFEST (or set data.manifest)")
    path = Path(d.manifest)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise UserError(f"manifest not found: {path}")
    rows = read_manifest(path)
    if not rows:
        raise UserError(f"manifest {path} is empty")
    train_rows = [r for s in d.split for r in select_rows(rows, s, d.methods, d.compressions)]
    if d.set_name != "all":
        paired, unpaired = h2_sets(train_rows, seed=d.set_seed)
        train_rows = paired if d.set_name == "paired" else unpaired
        if not train_rows:
            raise UserError(f"set_name={d.set_name} left no training rows")
    if d.holdout:
        per_video = int(d.holdout) if d.holdout >= 1 else float(d.holdout)
        train_rows, val_rows = holdout_frames(train_rows, per_video=per_video)
    elif d.val_split:
        try:
            val_rows = select_rows(rows, d.val_split, d.methods, d.compressions)
        except UserError:
            val_rows = []  # no validation rows: training still runs, without per-epoch validation
    else:
        val_rows = []
    if cfg.eval_max_rows is not None and len(val_rows) > cfg.eval_max_rows:
        step = len(val_rows) / cfg.eval_max_rows
        val_rows = [val_rows[int(i * step)] for i in range(cfg.eval_max_rows)]
    i = cfg.input
    augment = build_augment(AugmentConfig(enabled=i.augment), seed=cfg.seed)
    base = FaceDataset(train_rows, path.parent, geometry=i.geometry(), augment=augment, cache_mb=cfg.cache_mb)
    weights = None
    if cfg.model.role in ("det", "fstmatching") and d.balance == "sampler":
        weights = balance_weights([int(r["label"]) for r in train_rows])
    val_set = (FaceDataset(val_rows, path.parent, geometry=i.geometry(), augment=None, cache_mb=cfg.cache_mb)
               if val_rows else None)
    return TrainData(path.parent, rows, train_rows, val_rows, SeededItems(base), weights, val_set)
