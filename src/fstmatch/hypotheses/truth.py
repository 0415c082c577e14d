"""Ground-truth scores of explanations on FST-Synth (docs/method.md §8).

FST-Synth knows, for every pixel of an aligned fake face, whether it came from the donor (target
identity) and whether it carries a manipulation trace. Pooled to the Shapley grid these give three
*regions* as per-cell fractions in [0, 1]:

- ``trace``: mean of the trace mask over the cell's pixels;
- ``donor``: mean of the donor mask;
- ``rest``:  mean of ``1 − max(donor, trace)`` — pixels that came unmodified from the source video.

**Definition.** A cell belongs to a region *in proportion to* the fraction of its pixels in the
region (mass-weighted; no threshold, so thin regions such as blend seams still count). For a map φ
and a region with cell fractions f:

- ``share = Σ_c relu(φ_c)·f_c / Σ_c relu(φ_c)`` — the share of the map's positive mass on the region;
- ``expected = mean_c f_c`` — the share a map spreading its positive mass evenly over the grid gets
  (the region's area);
- ``lift = mean(share) / mean(expected)`` over images: 1 is chance, above 1 means the map
  concentrates on the region it should use.

Which region a model should use (:data:`ROLE_REGION`): detectors (and FST-Matching, whose forward
is its detection) → ``trace``; the target encoder → ``donor``; the source encoder → ``rest``.
Images whose map has no positive mass or whose region is empty are skipped and counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fstmatch.hypotheses.metrics import as_maps

#: The region each model role should attend to.
ROLE_REGION: dict[str, str] = {
    "det": "trace",
    "det_paired": "trace",
    "det_unpaired": "trace",
    "det_all": "trace",
    "fstmatching": "trace",
    "target": "donor",
    "source": "rest",
}
REGIONS: tuple[str, ...] = ("trace", "donor", "rest")


def pool_to_grid(masks: Any, grid: int) -> np.ndarray:
    """Mean of ``masks`` ``(N, H, W)`` (or ``(H, W)``) over each of the G×G cells, ``(N, G, G)``.

    Cell ``(i, j)`` spans rows ``floor(i·H/G) .. floor((i+1)·H/G)`` (same for columns), which is the
    plain ``H/G`` tiling when G divides H.
    """
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().double().numpy()
    arr = np.asarray(masks, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected masks (N, H, W) or (H, W), got {arr.shape}")
    n, h, w = arr.shape
    if h < grid or w < grid:
        raise ValueError(f"masks {h}x{w} are smaller than the {grid}x{grid} grid")
    if h % grid == 0 and w % grid == 0:
        return arr.reshape(n, grid, h // grid, grid, w // grid).mean(axis=(2, 4))
    rows = [(i * h) // grid for i in range(grid + 1)]
    cols = [(j * w) // grid for j in range(grid + 1)]
    out = np.empty((n, grid, grid))
    for i in range(grid):
        for j in range(grid):
            out[:, i, j] = arr[:, rows[i] : rows[i + 1], cols[j] : cols[j + 1]].mean(axis=(1, 2))
    return out


def region_fractions(masks: Any, grid: int) -> dict[str, np.ndarray]:
    """Per-cell fractions of the three regions from aligned masks ``(N, 2, H, W)`` (channel 0 donor,
    channel 1 trace, as ``FaceDataset(with_masks=True)`` returns them)."""
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().double().numpy()
    arr = np.asarray(masks, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != 2:
        raise ValueError(f"expected masks (N, 2, H, W), got {arr.shape}")
    donor, trace = np.clip(arr[:, 0], 0, 1), np.clip(arr[:, 1], 0, 1)
    rest = 1.0 - np.maximum(donor, trace)
    return {
        "trace": pool_to_grid(trace, grid),
        "donor": pool_to_grid(donor, grid),
        "rest": pool_to_grid(rest, grid),
    }


def truth_shares(phi: Any, fractions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: ``share``, ``expected`` and a bool ``valid`` (map has positive mass and the
    region is non-empty), each ``(N,)``; invalid images have share = expected = NaN."""
    p = np.maximum(as_maps(phi), 0.0)
    f = as_maps(fractions)
    if p.shape != f.shape:
        raise ValueError(f"map {p.shape} and region fractions {f.shape} differ in shape")
    mass = p.sum(axis=(1, 2))
    expected = f.mean(axis=(1, 2))
    valid = (mass > 0) & (expected > 0)
    share = np.full(len(p), np.nan)
    share[valid] = (p * f).sum(axis=(1, 2))[valid] / mass[valid]
    return share, np.where(valid, expected, np.nan), valid


def truth_score(phi: Any, fractions: Any) -> dict[str, float | int]:
    """Summary of :func:`truth_shares` over images: mean ``share``, mean ``expected``, ``lift``
    (their ratio), the number of images used ``n`` and skipped ``skipped``."""
    share, expected, valid = truth_shares(phi, fractions)
    n = int(valid.sum())
    if n == 0:
        return {"share": float("nan"), "expected": float("nan"), "lift": float("nan"), "n": 0,
                "skipped": len(valid)}
    mean_share, mean_expected = float(share[valid].mean()), float(expected[valid].mean())
    return {
        "share": mean_share,
        "expected": mean_expected,
        "lift": mean_share / mean_expected,
        "n": n,
        "skipped": int(len(valid) - n),
    }
