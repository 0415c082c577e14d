"""Figures of a verify run (matplotlib, Agg backend, PNG written atomically)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fstmatch.hypotheses.metrics import top_mask, unit_normalise
from fstmatch.utils.io import atomic_path


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _plt()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def overlap_codes(phi_s: np.ndarray, phi_t: np.ndarray, phi_d: np.ndarray, threshold: float) -> np.ndarray:
    """Per cell: 0 neither, 1 top source/target union only, 2 top detector only, 3 both (the
    reference's fifth panel; both masks use the same top-cell rule at ``threshold``)."""
    u = np.maximum(unit_normalise(phi_s), unit_normalise(phi_t))
    union = top_mask(u, threshold)[0]
    det = top_mask(unit_normalise(phi_d), threshold)[0]
    return union.astype(int) + 2 * det.astype(int)


def h1_example(image: np.ndarray, phi_s: np.ndarray, phi_t: np.ndarray, phi_d: np.ndarray, threshold: float,
               path: Path, title: str = "") -> Path:
    """face | φ source | φ target | φ det | overlap of the top det cells with the top union cells."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _plt()
    maps = [unit_normalise(m)[0] for m in (phi_s, phi_t, phi_d)]
    lim = max(float(np.abs(np.stack(maps)).max()), 1e-12)
    fig, axes = plt.subplots(1, 5, figsize=(11, 2.6))
    axes[0].imshow(image)
    axes[0].set_title("face", fontsize=9)
    for ax, m, name in zip(axes[1:4], maps, ("φ source", "φ target", "φ det")):
        ax.imshow(m, cmap="bwr", vmin=-lim, vmax=lim)
        ax.set_title(name, fontsize=9)
    colours = ListedColormap(["#f5f5f5", "#9fdede", "orange", "maroon"])
    axes[4].imshow(overlap_codes(phi_s, phi_t, phi_d, threshold), cmap=colours, vmin=0, vmax=3)
    axes[4].set_title(f"top {round(100 * (1 - threshold))}% cells", fontsize=9)
    for ax in axes:
        ax.axis("off")
    handles = [Patch(color=c, label=lbl) for c, lbl in
               zip(colours.colors[1:], ("source/target only", "det only", "both"))]
    axes[4].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def bar_chart(values: Mapping[str, float], errors: Mapping[str, float], path: Path, ylabel: str,
              title: str = "", zero_line: bool = True) -> Path:
    """One bar per key with ±error bars (e.g. Q per method, δ per model)."""
    plt = _plt()
    keys = list(values)
    fig, ax = plt.subplots(figsize=(max(3.5, 1.1 * len(keys) + 1.5), 3.2))
    ax.bar(keys, [values[k] for k in keys], yerr=[errors.get(k, 0.0) for k in keys], capsize=4,
           color="#4c72b0")
    if zero_line:
        ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=20)
    if title:
        ax.set_title(title, fontsize=10)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    return _save(fig, path)


def h2_curves(paired: Mapping[str, Mapping[float, float]], unpaired: Mapping[str, Mapping[float, float]],
              paired_err: Mapping[str, Sequence[float]], unpaired_err: Mapping[str, Sequence[float]],
              path: Path) -> Path:
    """Per method, Q(t) of the paired and unpaired detectors in one panel (±SEM over images)."""
    plt = _plt()
    methods = list(paired)
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.0), squeeze=False, sharey=True)
    for ax, m in zip(axes[0], methods):
        ts = list(paired[m])
        for curve, err, label, colour in ((paired[m], paired_err[m], "paired", "#c44e52"),
                                          (unpaired[m], unpaired_err[m], "unpaired", "#4c72b0")):
            y = np.array([curve[t] for t in ts])
            e = np.asarray(err)
            ax.plot(ts, y, marker=".", label=label, color=colour)
            ax.fill_between(ts, y - e, y + e, color=colour, alpha=0.15)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("threshold t")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    axes[0][0].set_ylabel("Q_t")
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)
