"""H1's Q and H3's δ in memory (a notebook), with no manifest or checkpoint on disk.

>>> from fstmatch.explain import shapley
>>> from fstmatch.hypotheses import q_metric, stability_of_model
>>> q = q_metric(shapley(src, faces, ids_s), shapley(tgt, faces, ids_t), shapley(det, faces, 1))  # H1
>>> d = stability_of_model(det, raw, c23, c40, target=1)                                           # H3
>>> d.delta, d.per_image

``q_metric`` (and every function of :mod:`fstmatch.hypotheses.metrics`) takes ``ShapleyResult``
objects as they are; this module adds the one quantity that needs a model: δ of a model on the raw,
c23 and c40 versions of the same aligned faces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fstmatch.hypotheses.metrics import stability_per_image


@dataclass
class Stability:
    """δ (hypothesis 3) of one model: ``delta`` the mean of ``per_image`` (N,), and the three
    ``ShapleyResult`` maps it came from (raw, c23, c40)."""

    delta: float
    per_image: np.ndarray
    maps: tuple[Any, Any, Any]


def stability_of_model(model, raw, c23, c40, target=None, **shapley_kwargs) -> Stability:
    """δ of ``model`` on the same aligned faces at three compressions, each (N, C, H, W) as the
    model takes them; ``target`` and ``shapley_kwargs`` go to :func:`fstmatch.explain.shapley`
    (the same seed for all three: common random numbers, docs/explain.md). Maps on a grid only."""
    from fstmatch.explain import ShapleyInputError, shapley

    shapes = {tuple(x.shape) for x in (raw, c23, c40)}
    if len(shapes) != 1:
        raise ShapleyInputError(f"raw, c23 and c40 must hold the same faces at one size, got shapes {sorted(shapes)}")
    if shapley_kwargs.get("feature_mask") is not None:
        raise ShapleyInputError("δ is defined on grid maps (docs/method.md §4): pass grid=, not feature_mask=")
    maps = tuple(shapley(model, x, target, **shapley_kwargs) for x in (raw, c23, c40))
    per_image = stability_per_image(*maps)
    return Stability(delta=float(per_image.mean()), per_image=per_image, maps=maps)
