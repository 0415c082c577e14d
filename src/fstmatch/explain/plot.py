"""PNG overlay of a Shapley map on its image (matplotlib, no pyplot: safe in any backend/thread)."""

from __future__ import annotations

import os

import numpy as np

from fstmatch.utils.io import atomic_path


def overlay_png(image: np.ndarray, values: np.ndarray, path: str | os.PathLike, title: str = "", dpi: int = 100) -> None:
    """Write ``path`` (PNG, atomically): the image, and the map in a diverging colour scale on top.

    Args:
        image: (H, W, 3) float in [0, 1] or uint8, or (3, H, W) float.
        values: (G, G) Shapley values (any scale; shown divided by their L2 norm, symmetric limits:
            red = raises the explained logit, blue = lowers it).
        title: figure title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)
    if img.dtype != np.uint8:
        img = np.clip(img, 0.0, 1.0)
    v = np.asarray(values, dtype=np.float64)
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    lim = max(float(np.abs(v).max()), 1e-12)
    h, w = img.shape[:2]
    fig = Figure(figsize=(8, 4), dpi=dpi)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.imshow(img, extent=(0, w, h, 0))
    ax1.set_title("image", fontsize=9)
    ax2.imshow(img.mean(axis=2) if img.ndim == 3 else img, cmap="gray", extent=(0, w, h, 0), alpha=0.6)
    shown = ax2.imshow(v, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.6, extent=(0, w, h, 0), interpolation="nearest")
    ax2.set_title("Shapley map (unit L2)", fontsize=9)
    for ax in (ax1, ax2):
        ax.set_axis_off()
    fig.colorbar(shown, ax=ax2, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
