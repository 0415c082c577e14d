"""Shapley values of grid cells ("visual concepts", docs/method.md §3) for any image classifier.

>>> from fstmatch.explain import shapley
>>> res = shapley(model, images, targets, grid=16)   # images (N, 3, H, W) in [0, 1]
>>> res.values.shape, res.normalized().shape          # (N, 16, 16) raw, unit-L2

Estimators: ``spline`` (default: size-spline KernelSHAP), ``auto`` (per image, the walk or Leverage
SHAP from a pilot of both), ``permutation``
(post-stratified antithetic permutation walk), ``kernel`` (paired KernelSHAP), ``leverage`` (Leverage
SHAP), ``unbiased`` (unbiased KernelSHAP), ``reference`` (the paper's per-cell sampler) and ``exact``
(full enumeration, grid*grid <= 12). See docs/explain.md.
"""

from fstmatch.explain._core import DEFAULT_METHOD, DEFAULT_PERMUTATIONS, METHODS, shapley
from fstmatch.explain._result import ShapleyResult
from fstmatch.explain._utils import ShapleyInputError, make_baseline

__all__ = ["DEFAULT_METHOD", "DEFAULT_PERMUTATIONS", "METHODS", "ShapleyInputError", "ShapleyResult", "make_baseline", "shapley"]
