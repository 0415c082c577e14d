"""Shapley values of image features ("visual concepts", docs/method.md §3) for any image classifier.

>>> from fstmatch.explain import shapley
>>> res = shapley(model, images, target=1, grid=16)          # images (N, 3, H, W) in [0, 1]
>>> res.values.shape, res.to_pixels().shape                  # (N, 16, 16), (N, H, W)
>>> res = shapley(f, images, target=1, feature_mask=labels)  # any callable; labels (H, W) 0..K-1 -> (N, K)

Estimators: ``spline`` (default: size-spline KernelSHAP), ``permutation`` (post-stratified antithetic
permutation walk), ``kernel`` (paired KernelSHAP), ``leverage`` (Leverage SHAP), ``unbiased``
(unbiased KernelSHAP), ``reference`` (the paper's per-player sampler) and ``exact`` (full
enumeration, at most 12 players). See docs/explain.md. Needs only torch and numpy; the plots need
matplotlib (``pip install 'fstmatch[plot]'``).
"""

from fstmatch.explain._concepts import FACE_CONCEPTS, face_concepts
from fstmatch.explain._core import DEFAULT_BUDGET, DEFAULT_ESTIMATOR, ESTIMATORS, shapley
from fstmatch.explain._result import EstimatorExtras, ShapleyResult
from fstmatch.explain._utils import ShapleyInputError, make_baseline
from fstmatch.explain.plot import plot

__all__ = ["DEFAULT_BUDGET", "DEFAULT_ESTIMATOR", "ESTIMATORS", "FACE_CONCEPTS", "EstimatorExtras", "ShapleyInputError",
           "ShapleyResult", "face_concepts", "make_baseline", "plot", "shapley"]
