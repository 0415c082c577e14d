"""Figures of Shapley maps on their images (matplotlib, no pyplot: safe in any backend/thread).

matplotlib is an optional dependency (``pip install 'fstmatch[plot]'``); the engine itself does not
need it.
"""

from __future__ import annotations

import os

import numpy as np

from fstmatch.utils.io import atomic_path


def plot(image, values, title: str = "", dpi: int = 100):
    """A matplotlib ``Figure``: the image, and the map in a diverging colour scale on top.

    Args:
        image: (H, W, 3) float in [0, 1] or uint8, or (3, H, W) float (numpy or torch).
        values: a (G, G) grid map, or an (H, W) pixel map (``res.to_pixels()[i]``, e.g. of a feature
            mask); any scale: shown divided by its L2 norm, symmetric limits (red = raises the
            explained output, blue = lowers it).
        title: figure title.

    In a notebook the figure displays itself; ``fig.savefig(path)`` writes it.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'fstmatch[plot]'") from None

    img = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)
    if img.dtype != np.uint8:
        img = np.clip(img, 0.0, 1.0)
    v = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    lim = max(float(np.abs(v).max()), 1e-12)
    h, w = img.shape[:2]
    fig = Figure(figsize=(8, 4), dpi=dpi)
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
    return fig


def overlay_png(image: np.ndarray, values: np.ndarray, path: str | os.PathLike, title: str = "", dpi: int = 100) -> None:
    """Write ``path`` (PNG, atomically): :func:`plot` of the image and its map."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = plot(image, values, title=title, dpi=dpi)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
