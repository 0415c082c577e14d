"""The paper's hypothesis metrics (docs/method.md §4) on Shapley maps of visual concepts.

Maps are stacks ``(N, G, G)`` (a single ``(G, G)`` map is treated as ``N = 1``), numpy arrays or
torch tensors. Every function unit-normalises each map over its G² cells first (a map that is all
zeros stays all zeros), so callers may pass raw Shapley values.

- :func:`q_curve` / :func:`q_metric` — hypothesis 1 and 2: how much of the detector's attribution
  lies *outside* the top cells of the source/target union, minus how much lies inside, / G².
- :func:`stability` — hypothesis 3: mean cosine similarity of a model's raw map with its c23 and
  c40 maps of the same frame.

Uncertainties (SEM, estimator noise, reproducibility, between-seed intervals) are in
:mod:`fstmatch.hypotheses.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: The reference's thresholds: 0.60, 0.65, …, 0.95 (its loop never reaches 1.0).
THRESHOLDS: tuple[float, ...] = tuple(round(0.60 + 0.05 * i, 2) for i in range(8))


def as_maps(phi: Any) -> np.ndarray:
    """``phi`` as a float64 array ``(N, G, G)``; accepts numpy, torch, nested lists or the
    ``ShapleyResult`` of :func:`fstmatch.explain.shapley` on a grid (its raw values)."""
    if hasattr(phi, "values") and hasattr(phi, "to_pixels"):  # a ShapleyResult
        phi = phi.values
    if hasattr(phi, "detach"):
        phi = phi.detach().cpu().double().numpy()
    arr = np.asarray(phi, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"expected maps of shape (N, G, G) or (G, G), got {arr.shape}")
    return arr


def unit_normalise(phi: Any) -> np.ndarray:
    """Each map divided by its L2 norm over the G² cells (docs/method.md §3); zero maps stay zero."""
    arr = as_maps(phi)
    norm = np.sqrt((arr**2).sum(axis=(1, 2), keepdims=True))
    return np.divide(arr, norm, out=np.zeros_like(arr), where=norm > 0)


def top_mask(u: np.ndarray, threshold: float) -> np.ndarray:
    """The reference's mask rule on maps ``u`` ``(N, G, G)``: sort ``relu(u)`` ascending, take
    ``τ = relu(u)_sorted[floor(G²·t)]`` and keep the cells with ``u > τ``.

    Ties at τ and cells with ``u <= 0`` are never kept, so the mask holds at most ``G²·(1-t)``
    cells (fewer when fewer cells are positive).
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    n, g, _ = u.shape
    cells = g * g
    k = min(math.floor(cells * threshold + 1e-9), cells - 1)
    ranked = np.sort(np.maximum(u.reshape(n, cells), 0.0), axis=1)
    tau = ranked[:, k].reshape(n, 1, 1)
    return u > tau


def union_mask(phi_s: Any, phi_t: Any, threshold: float) -> np.ndarray:
    """Top cells of the source/target union ``max(φs, φt)`` of unit maps (docs/method.md §4), bool ``(N, G, G)``."""
    u = np.maximum(unit_normalise(phi_s), unit_normalise(phi_t))
    return top_mask(u, threshold)


def _check_same_shape(*maps: np.ndarray) -> None:
    shapes = {m.shape for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"maps must have the same shape, got {sorted(shapes)}")


def _thresholds(thresholds: Sequence[float] | None) -> tuple[float, ...]:
    ts = THRESHOLDS if thresholds is None else tuple(float(t) for t in thresholds)
    if not ts:
        raise ValueError("at least one threshold is needed")
    return ts


def q_per_image(
    phi_s: Any, phi_t: Any, phi_d: Any, thresholds: Sequence[float] | None = None
) -> np.ndarray:
    """``Q_t`` for every image and threshold, ``(N, T)``: ``(Σ_{∉U} φd − Σ_{∈U} φd) / G²``."""
    s, t, d = unit_normalise(phi_s), unit_normalise(phi_t), unit_normalise(phi_d)
    _check_same_shape(s, t, d)
    n, g, _ = d.shape
    u = np.maximum(s, t)
    ts = _thresholds(thresholds)
    out = np.empty((n, len(ts)))
    for j, th in enumerate(ts):
        inside = top_mask(u, th)
        signed = np.where(inside, -d, d)
        out[:, j] = signed.sum(axis=(1, 2)) / (g * g)
    return out


def q_curve(
    phi_s: Any, phi_t: Any, phi_d: Any, thresholds: Sequence[float] | None = None
) -> dict[float, float]:
    """``{t: Q_t}`` averaged over images (hypothesis 2 plots this curve)."""
    ts = _thresholds(thresholds)
    per_image = q_per_image(phi_s, phi_t, phi_d, ts)
    return {th: float(v) for th, v in zip(ts, per_image.mean(axis=0))}


def q_metric(phi_s: Any, phi_t: Any, phi_d: Any, thresholds: Sequence[float] | None = None) -> float:
    """Q: ``Q_t`` averaged over images and thresholds (hypothesis 1). Q > 0: the detector relies on
    cells that are neither source- nor target-relevant."""
    return float(q_per_image(phi_s, phi_t, phi_d, thresholds).mean())


def stability_per_image(phi_raw: Any, phi_c23: Any, phi_c40: Any) -> np.ndarray:
    """``(⟨φ_raw, φ_c23⟩ + ⟨φ_raw, φ_c40⟩) / 2`` of unit maps, one value per image, ``(N,)``."""
    raw, c23, c40 = unit_normalise(phi_raw), unit_normalise(phi_c23), unit_normalise(phi_c40)
    _check_same_shape(raw, c23, c40)
    return ((raw * c23).sum(axis=(1, 2)) + (raw * c40).sum(axis=(1, 2))) / 2


def stability(phi_raw: Any, phi_c23: Any, phi_c40: Any) -> float:
    """δ (hypothesis 3): :func:`stability_per_image` averaged over images."""
    return float(stability_per_image(phi_raw, phi_c23, phi_c40).mean())
