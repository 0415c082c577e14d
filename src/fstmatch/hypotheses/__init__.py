"""Hypothesis verification (docs/method.md §4, §8): the paper's metrics, ground-truth scores on FST-Synth,
and the ``verify`` runs that compute them from trained models.

Metrics (pure numpy, no model needed)::

    from fstmatch.hypotheses import q_metric, q_curve, stability, truth_score

In memory, from ``fstmatch.explain.shapley`` results and a model (no manifest, no checkpoint)::

    q_metric(shapley(src, x, ids_s), shapley(tgt, x, ids_t), shapley(det, x, 1))   # H1
    stability_of_model(det, raw, c23, c40, target=1).delta                         # H3
"""

from fstmatch.hypotheses.inmemory import Stability, stability_of_model
from fstmatch.hypotheses.metrics import (
    THRESHOLDS,
    q_curve,
    q_metric,
    q_per_image,
    stability,
    stability_per_image,
    top_mask,
    union_mask,
    unit_normalise,
)
from fstmatch.hypotheses.stats import auc_stderr, between_seeds, perturbed_std, reproducibility, sem
from fstmatch.hypotheses.truth import ROLE_REGION, pool_to_grid, region_fractions, truth_score, truth_shares

__all__ = [
    "ROLE_REGION",
    "THRESHOLDS",
    "Stability",
    "auc_stderr",
    "between_seeds",
    "perturbed_std",
    "pool_to_grid",
    "q_curve",
    "q_metric",
    "q_per_image",
    "region_fractions",
    "reproducibility",
    "sem",
    "stability",
    "stability_of_model",
    "stability_per_image",
    "top_mask",
    "truth_score",
    "truth_shares",
    "union_mask",
    "unit_normalise",
]
