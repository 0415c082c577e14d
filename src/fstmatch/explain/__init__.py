"""Shapley values of grid cells ("visual concepts", docs/method.md §3) for any image classifier.

>>> from fstmatch.explain import shapley
>>> res = shapley(model, images, targets, grid=16)   # images (N, 3, H, W) in [0, 1]
>>> res.values.shape, res.normalized().shape          # (N, 16, 16) raw, unit-L2

Estimators: ``permutation`` (antithetic permutation walk, default), ``reference`` (the paper's
per-cell sampler) and ``exact`` (full enumeration, grid*grid <= 12). See docs/explain.md.
"""

from fstmatch.explain._core import DEFAULT_PERMUTATIONS, METHODS, ShapleyResult, shapley
from fstmatch.explain._utils import ShapleyInputError, make_baseline

__all__ = ["DEFAULT_PERMUTATIONS", "METHODS", "ShapleyInputError", "ShapleyResult", "make_baseline", "shapley"]
