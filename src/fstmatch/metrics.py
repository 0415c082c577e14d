"""Detection and identity metrics (docs/method.md §7).

``detection_metrics(labels, scores, video_ids=None)``: frame-level AUC, accuracy at 0.5, EER and
average precision of fake-probabilities; with ``video_ids``, video-level AUC of per-video mean
scores. Video ids must be unique per (method, compression, video) — fakes of different methods
share video names — so pass composite ids such as ``f"{method}/{compression}/{video}"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from fstmatch.errors import UserError


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise UserError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """The error rate where false-positive rate = false-negative rate, on the ROC curve with
    straight lines between its points (exact at a ROC point, linear between two)."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # starts at 1 (fpr=0, fnr=1), decreases to -1 (fpr=1, fnr=0)
    i = int(np.nonzero(diff <= 0)[0][0])
    if diff[i] == 0 or i == 0:
        return float(fpr[i])
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def detection_metrics(
    labels: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    video_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Frame (and video) level detection metrics.

    labels: (N,) 0 real / 1 fake. scores: (N,) probability of *fake* in [0, 1] (softmax of the
    det logits, class 1), not logits. A score >= 0.5 counts as "fake" for ``acc``.
    video_ids: (N,) ids unique per (method, compression, video) (see the module doc).

    Returns ``auc``, ``acc``, ``eer``, ``ap``, ``n``, ``n_real``, ``n_fake`` and, with video ids,
    ``video_auc``, ``n_videos``. When only one class is present AUC/EER/AP (and video AUC) are
    undefined: they are NaN and a ``note`` string says why (``acc`` is still computed).
    """
    y = _to_numpy(labels, "labels")
    s = _to_numpy(scores, "scores").astype(np.float64)
    if y.shape != s.shape:
        raise UserError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    if y.size == 0:
        raise UserError("no samples: labels and scores are empty")
    if not np.isin(y, (0, 1)).all():
        raise UserError(
            f"labels must be 0 (real) or 1 (fake), got values {sorted(set(np.unique(y).tolist()))[:5]}"
        )
    y = y.astype(np.int64)
    if not np.isfinite(s).all():
        raise UserError("scores contain NaN or inf")
    if s.min() < 0 or s.max() > 1:
        raise UserError(
            f"scores must be probabilities of fake in [0, 1] (got range [{s.min():.3g}, {s.max():.3g}]); pass softmax(logits)[:, 1], not logits"
        )

    n_fake = int(y.sum())
    out: dict[str, Any] = {"n": int(y.size), "n_real": int(y.size - n_fake), "n_fake": n_fake}
    out["acc"] = float(((s >= 0.5).astype(np.int64) == y).mean())
    notes = []
    if 0 < n_fake < y.size:
        out["auc"] = float(roc_auc_score(y, s))
        out["eer"] = equal_error_rate(y, s)
        out["ap"] = float(average_precision_score(y, s))
    else:
        out["auc"] = out["eer"] = out["ap"] = float("nan")
        only = "fake" if n_fake else "real"
        notes.append(f"only {only} frames: AUC, EER and AP are undefined (NaN)")

    if video_ids is not None:
        vid = _to_numpy(np.asarray(list(video_ids), dtype=object), "video_ids")
        if vid.shape != y.shape:
            raise UserError(f"video_ids differ in length from labels: {vid.shape[0]} vs {y.shape[0]}")
        names, inverse = np.unique(vid.astype(str), return_inverse=True)
        counts = np.bincount(inverse, minlength=len(names))
        mean_score = np.bincount(inverse, weights=s, minlength=len(names)) / counts
        fake_frac = np.bincount(inverse, weights=y, minlength=len(names)) / counts
        mixed = names[(fake_frac > 0) & (fake_frac < 1)]
        if mixed.size:
            raise UserError(
                f"video ids mix real and fake frames (ids must be unique per method, compression and video): {mixed[:3].tolist()}"
            )
        video_labels = fake_frac.astype(np.int64)
        out["n_videos"] = len(names)
        if 0 < video_labels.sum() < len(names):
            out["video_auc"] = float(roc_auc_score(video_labels, mean_score))
        else:
            out["video_auc"] = float("nan")
            if not notes:
                notes.append("videos of one class only: video AUC is undefined (NaN)")
    if notes:
        out["note"] = "; ".join(notes)
    return out


def identity_accuracy(labels: Sequence[int] | np.ndarray, logits_or_preds: Any) -> float:
    """Top-1 accuracy: labels (N,) integer ids; logits (N, K) (argmax taken) or predictions (N,)."""
    y = _to_numpy(labels, "labels")
    p = (
        logits_or_preds.detach().cpu().numpy()
        if hasattr(logits_or_preds, "detach")
        else np.asarray(logits_or_preds)
    )
    if p.ndim == 2:
        p = p.argmax(axis=1)
    elif p.ndim != 1:
        raise UserError(f"identity predictions must be logits (N, K) or labels (N,), got shape {p.shape}")
    if p.shape[0] != y.shape[0]:
        raise UserError(f"labels and predictions differ in length: {y.shape[0]} vs {p.shape[0]}")
    if y.size == 0:
        raise UserError("no samples for identity accuracy")
    return float((p.astype(np.int64) == y.astype(np.int64)).mean())
