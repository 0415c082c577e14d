"""Scores of attribution maps against a ground-truth pixel mask, and of their sanity, per image.

Written here rather than taken from Quantus 0.6: Quantus requires the GUI build of opencv-python
(which installs the same ``cv2`` package as the project's opencv-python-headless and overwrites it),
pandas and scikit-image. The definitions follow Quantus's (Hedström et al., JMLR 2023) where it has
one, with the differences said below. Every function takes one image's map ``a`` (H, W) and a mask
``m`` (H, W) in [0, 1] (FST-Synth's trace or donor mask at the map's resolution) and returns a
float, NaN where the score is undefined for that image (callers skip NaNs and count them).

- :func:`mass_share`: share of the map's *positive* mass on the mask, ``Σ relu(a)·m / Σ relu(a)``
  (Quantus ``RelevanceMassAccuracy``, Arras et al. 2022, on ``relu(a)``: negative attribution is
  evidence against the class, not a location); with :func:`area_share` ``mean(m)``, the lift is
  ``mean(share) / mean(area)`` over images, as ``fstmatch.hypotheses.truth`` defines it on cells.
- :func:`pointing_game`: whether the map's maximum lies on the mask (Quantus ``PointingGame``,
  Zhang et al. 2018, without a tolerance margin). Ties (a Shapley map is constant over each cell)
  are scored as the mask's mean over all maximal pixels: the hit rate of a random tie-break.
- :func:`auroc`: ROC AUC of the pixel values as a score for ``m > 0.5`` (Quantus ``AUC``, Fawcett
  2006; sklearn's ``roc_auc_score``, ties counted half).
- :func:`rank_correlation`: Spearman's rank correlation of ``|a|`` and ``|b|`` over pixels (Quantus
  ``ModelParameterRandomisation``'s default similarity, Adebayo et al. 2018, on absolute values).
- :func:`bootstrap_ci`: the percentile bootstrap interval of a statistic over images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _pair(a: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, m = np.asarray(a, dtype=np.float64), np.asarray(m, dtype=np.float64)
    if a.shape != m.shape or a.ndim != 2:
        raise ValueError(f"map {a.shape} and mask {m.shape} must be the same (H, W)")
    return a, m


def mass_share(a: np.ndarray, m: np.ndarray) -> float:
    """``Σ relu(a)·m / Σ relu(a)``; NaN when the map has no positive mass."""
    a, m = _pair(a, m)
    p = np.maximum(a, 0.0)
    total = p.sum()
    return float((p * m).sum() / total) if total > 0 else float("nan")


def area_share(m: np.ndarray) -> float:
    """``mean(m)``: the share a map spreading its mass evenly would put on the mask."""
    return float(np.asarray(m, dtype=np.float64).mean())


def lift(shares: np.ndarray, areas: np.ndarray) -> float:
    """``mean(share) / mean(area)`` over the images where both are defined and the area is > 0."""
    s, e = np.asarray(shares, dtype=np.float64), np.asarray(areas, dtype=np.float64)
    ok = np.isfinite(s) & np.isfinite(e) & (e > 0)
    return float(s[ok].mean() / e[ok].mean()) if ok.any() else float("nan")


def pointing_game(a: np.ndarray, m: np.ndarray) -> float:
    """1 if the maximum of ``a`` lies on the mask, 0 if not; with ties, the mask's mean over every
    maximal pixel. NaN when the mask is empty."""
    a, m = _pair(a, m)
    if not (m > 0.5).any():
        return float("nan")
    top = a >= a.max()
    return float((m[top] > 0.5).mean())


def auroc(a: np.ndarray, m: np.ndarray) -> float:
    """ROC AUC of the map's values for the mask's pixels (``m > 0.5``) against the others; NaN when
    the mask is empty or covers everything."""
    from sklearn.metrics import roc_auc_score

    a, m = _pair(a, m)
    y = (m > 0.5).ravel()
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, a.ravel()))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of ``|a|`` and ``|b|`` over pixels; NaN when either is constant."""
    from scipy.stats import spearmanr

    a, b = _pair(a, b)
    x, y = np.abs(a).ravel(), np.abs(b).ravel()
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def bootstrap_ci(
    values: np.ndarray | list[np.ndarray],
    statistic: Callable[..., float] = np.mean,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(estimate, low, high)``: ``statistic`` of the images and its percentile bootstrap interval,
    images resampled with replacement. ``values``: one array (N,) or a list of arrays resampled
    together (e.g. shares and areas for :func:`lift`). NaN entries (undefined images) are dropped
    first, in all arrays alike. With fewer than 2 images the interval is NaN."""
    arrays = [np.asarray(v, dtype=np.float64) for v in (values if isinstance(values, list) else [values])]
    ok = np.logical_and.reduce([np.isfinite(v) for v in arrays])
    arrays = [v[ok] for v in arrays]
    n = len(arrays[0])
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    est = float(statistic(*arrays))
    if n < 2:
        return est, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    stats = np.array([statistic(*(v[i] for v in arrays)) for i in idx])
    stats = stats[np.isfinite(stats)]
    alpha = (1 - level) / 2
    return est, float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))
