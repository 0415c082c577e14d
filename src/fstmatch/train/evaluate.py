"""Test-time metrics (docs/method.md §7): ``evaluate(model, rows, root) -> dict`` and its stdout table.

Detectors (role ``det`` and ``fstmatching``): frame AUC, ACC@0.5, EER, AP and video AUC (mean
frame probability per (method, compression, video)), per method × compression — a method's numbers
include the reals of the same compression — per compression (all methods) and overall.
Identity encoders (``source``/``target``): top-1 accuracy per group and overall. FST-Matching also
reports the accuracy of its source and target heads.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fstmatch.data.geometry import Geometry
from fstmatch.errors import UserError

ROLES = ("det", "source", "target", "fstmatching")


def model_role(model: nn.Module) -> str:
    """The role recorded by ``create_model`` (``model.fst_meta["name"]``); a plain backbone with two
    outputs counts as a detector."""
    meta = getattr(model, "fst_meta", None) or {}
    name = meta.get("name")
    if name in ROLES:
        return name
    if meta.get("kwargs", {}).get("num_classes") == 2 or getattr(model, "num_classes", None) == 2:
        return "det"  # e.g. deepfakebench:xception, timm:<name> with two classes
    raise UserError(f"cannot tell what model {name!r} predicts; pass its role (one of {', '.join(ROLES)})")


@torch.no_grad()
def predict(
    model: nn.Module, rows: list[dict[str, Any]], root: str | Path, *, role: str, geometry: Geometry | None = None,
    batch_size: int = 128, device: torch.device | str = "cpu", amp: str = "none", num_workers: int = 0,
    progress: bool = True, dataset: torch.utils.data.Dataset | None = None,
) -> dict[str, np.ndarray]:
    """Per-row outputs: ``prob`` (P(fake)) for detectors, ``pred_<head>`` top-1 ids for identity heads.
    Faces are aligned with ``geometry`` (``None``: ``Geometry()``, see :func:`fstmatch.data.load_face`).
    ``dataset``: the faces of ``rows`` already wrapped (e.g. a training run's cached validation
    faces), item ``i`` being row ``i`` unaugmented; ``geometry`` is then unused."""
    from tqdm import tqdm

    from fstmatch.data import FaceDataset

    device = torch.device(device)
    if dataset is not None and len(dataset) != len(rows):  # type: ignore[arg-type]
        raise ValueError(f"dataset has {len(dataset)} items for {len(rows)} rows")  # type: ignore[arg-type]
    ds = dataset if dataset is not None else FaceDataset(rows, Path(root), geometry=geometry, augment=None)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
                if amp != "none" else contextlib.nullcontext())
    was_training = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = defaultdict(list)
    for batch in tqdm(loader, disable=not progress, desc="test", unit="batch", dynamic_ncols=True):
        x = batch["image"].to(device)
        with autocast:
            if role == "fstmatching" and hasattr(model, "forward_all"):
                heads = {k: v for k, v in model.forward_all(x).items() if k in ("det", "source", "target")}
            else:
                heads = {"det" if role == "det" else role: model(x)}
        for k, logits in heads.items():
            logits = logits.float()
            if k == "det":
                out["prob"].append(torch.softmax(logits, 1)[:, 1].cpu().numpy())
            else:
                out[f"pred_{k}"].append(logits.argmax(1).cpu().numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def _det_metrics(labels: np.ndarray, probs: np.ndarray, videos: list[str]) -> dict[str, Any]:
    from fstmatch.metrics import detection_metrics

    res: dict[str, Any] = {"n": len(labels), "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum())}
    if res["n_real"] and res["n_fake"]:
        res.update(detection_metrics(labels, probs, video_ids=videos))
    else:  # one class only: AUC/EER/AP are undefined (left out rather than NaN, which JSON lacks)
        res["acc"] = float(((probs >= 0.5).astype(int) == labels).mean())
    return res


def evaluate(
    model: nn.Module, rows: list[dict[str, Any]], root: str | Path, *, role: str | None = None, **kw: Any
) -> dict[str, Any]:
    """Metrics of ``model`` on manifest ``rows`` (crops under ``root``); ``kw`` go to :func:`predict`."""
    if not rows:
        raise UserError("no rows to evaluate")
    role = role or model_role(model)
    out = predict(model, rows, root, role=role, **kw)
    method = np.array([r["method"] for r in rows])
    comp = np.array([r["compression"] for r in rows])
    result: dict[str, Any] = {"role": role, "n": len(rows), "overall": {}, "by_compression": {}, "by_method": {}}
    if "prob" in out:
        labels = np.array([int(r["label"]) for r in rows])
        videos = np.array([f"{r['method']}/{r['compression']}/{r['video']}" for r in rows])
        probs = out["prob"]

        def det(mask: np.ndarray) -> dict[str, Any]:
            return _det_metrics(labels[mask], probs[mask], videos[mask].tolist())

        result["overall"] = det(np.ones(len(rows), bool))
        for c in sorted(set(comp)):
            at_c = comp == c
            result["by_compression"][c] = det(at_c)
            for m in sorted(set(method[at_c]) - {"real"}):
                result["by_method"][f"{m}/{c}"] = det(at_c & ((method == m) | (method == "real")))
    from fstmatch.metrics import identity_accuracy

    for key, pred in out.items():
        if not key.startswith("pred_"):
            continue
        head = key[len("pred_"):]
        truth = np.array([int(r[head]) for r in rows])
        name = "identity_acc" if role in ("source", "target") else f"{head}_acc"
        result["overall"].setdefault("n", len(rows))
        result["overall"][name] = identity_accuracy(truth, pred)
        for c in sorted(set(comp)):
            at_c = comp == c
            result["by_compression"].setdefault(c, {"n": int(at_c.sum())})[name] = identity_accuracy(truth[at_c], pred[at_c])
            for m in sorted(set(method[at_c])):
                mask = at_c & (method == m)
                group = result["by_method"].setdefault(f"{m}/{c}", {"n": int(mask.sum())})
                group[name] = identity_accuracy(truth[mask], pred[mask])
    return result


_COLUMNS = ("n", "auc", "acc", "eer", "ap", "video_auc", "identity_acc", "source_acc", "target_acc")


def format_table(result: dict[str, Any]) -> str:
    """A fixed-width table of every group (rows) and metric (columns)."""
    groups = [*[(k, v) for k, v in result["by_method"].items()],
              *[(f"all/{k}", v) for k, v in result["by_compression"].items()], ("overall", result["overall"])]
    cols = [c for c in _COLUMNS if any(c in g for _, g in groups)]
    width = max(len(name) for name, _ in groups) + 2
    lines = ["group".ljust(width) + "".join(c.rjust(13) for c in cols)]
    for name, g in groups:
        cells = []
        for c in cols:
            v = g.get(c)
            cells.append(("-" if v is None else str(v) if isinstance(v, int) else f"{v:.4f}").rjust(13))
        lines.append(name.ljust(width) + "".join(cells))
    return "\n".join(lines)
