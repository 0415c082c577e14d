"""Every uncertainty the study reports, in one place (pure numpy/scipy, no model needed).

Within one training run (one seed):

- :func:`sem` — standard error of a mean over the analysed images;
- :func:`perturbed_std` — *estimator noise*: how much a statistic moves when every Shapley map is
  redrawn from its per-cell standard error (the estimator's share of the uncertainty);
- :func:`reproducibility` — mean cosine between two independent estimates of the same maps, and
  :func:`attenuation_corrected` — a cosine-based statistic divided by it (Spearman's correction);
- :func:`auc_stderr` — Hanley & McNeil's standard error of a ROC AUC from the class counts.

Across training seeds (:func:`between_seeds`): the mean over seeds, its between-seed standard error,
a 95 % interval from Student's t with ``n − 1`` degrees of freedom, the seed-to-seed spread beyond
what the per-seed SEMs explain, the fraction of seeds on which the claim held, a verdict
(:data:`VERDICT_RULE`) and the minimum detectable effect at 80 % power
(:func:`min_detectable_effect`): so "not supported" reads as "no effect larger than X".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

HELD, NOT_SUPPORTED, CONTRADICTED = "held", "not supported", "contradicted"

#: The verdict rule, as the reports state it.
VERDICT_RULE = (
    "Each claim is a sign: a quantity (Q, a difference, an AUC difference) is claimed to be > 0. Over the "
    "training seeds we take the quantity's mean and its 95 % interval (mean ± t₀.₉₇₅,ₙ₋₁ · SD/√n, Student's t "
    "with n − 1 degrees of freedom, n = number of seeds). **held**: the whole interval is above 0. "
    "**contradicted**: the whole interval is below 0. **not supported**: the interval contains 0 (or there are "
    "fewer than two seeds). A claim made for every method (or every model) is held when it is held for each, "
    "contradicted when it is contradicted for at least one, and not supported otherwise."
)


# --- within one seed --------------------------------------------------------------------------------

def sem(values: Any) -> float:
    """Standard error of the mean over the first axis (a row of several values counts as their mean);
    0 for fewer than two values."""
    arr = np.asarray(values, dtype=np.float64).reshape(len(values), -1).mean(axis=1)
    if len(arr) < 2:
        return 0.0
    return float(arr.std(ddof=1) / math.sqrt(len(arr)))


def perturbed_std(
    statistic: Callable[..., float],
    maps: Sequence[Any],
    stderrs: Sequence[Any | None],
    draws: int = 64,
    seed: int = 0,
) -> float:
    """Standard deviation of ``statistic(*maps)`` when every map is redrawn as ``φ + stderr·ε``
    (ε standard normal per cell): the part of the statistic's uncertainty that comes from the
    Shapley estimator, not from the choice of images.

    ``stderrs[i]`` is the per-cell standard error of ``maps[i]`` (same shape, raw scale, as returned
    by the Shapley engine) or ``None`` for an exact map. 0 when every map is exact or ``draws < 2``.
    """
    if len(maps) != len(stderrs):
        raise ValueError("one stderr (or None) per map is needed")
    rng = np.random.default_rng(seed)
    base = [np.asarray(m, dtype=np.float64) for m in maps]
    errs = [None if e is None else np.asarray(e, dtype=np.float64) for e in stderrs]
    if all(e is None for e in errs) or draws < 2:
        return 0.0
    values = []
    for _ in range(draws):
        drawn = [b if e is None else b + e * rng.standard_normal(b.shape) for b, e in zip(base, errs)]
        values.append(statistic(*drawn))
    return float(np.std(values, ddof=1))


def reproducibility(first: Any, second: Any) -> float:
    """Mean over images of cos(φ, φ′) between two independent estimates ``(N, G, G)`` of the same
    maps: the similarity a perfectly stable model would reach given the estimator's noise."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape, got {a.shape} and {b.shape}")
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = np.divide((a * b).sum(axis=1), na * nb, out=np.zeros(len(a)), where=(na > 0) & (nb > 0))
    return float(cos.mean())


def attenuation_corrected(value: float, repro: float) -> float | None:
    """``value / repro`` (Spearman's correction for attenuation); ``None`` when ``repro <= 0``."""
    return value / repro if repro > 0 else None


def auc_stderr(auc: float | None, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of a ROC AUC from the numbers of positives and negatives;
    NaN when a class is empty or the AUC is missing."""
    if not (n_pos and n_neg) or auc is None or math.isnan(auc):
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


# --- across seeds -----------------------------------------------------------------------------------

def t_quantile(p: float, df: int) -> float:
    """Quantile ``p`` of Student's t with ``df`` degrees of freedom (e.g. 4.303 for 0.975, df = 2)."""
    from scipy.stats import t

    return float(t.ppf(p, df))


def min_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean |μ| that the study's two-sided t-test at level ``alpha`` detects with
    probability ``power``, in the quantity's own units, taking the between-seed SD to be ``sd``.

    Exact for the one-sample t-test: solves ``P(|T| > t_{1-α/2, n-1}) = power`` for ``T`` noncentral
    t with ``n − 1`` degrees of freedom and noncentrality ``μ√n / sd`` (scipy's ``nct``). Close to the
    textbook ``(t_{1-α/2} + t_{power}) · sd/√n``. NaN for n < 2 or a non-finite sd; 0 for sd = 0."""
    if n < 2 or not math.isfinite(sd):
        return float("nan")
    if sd == 0:
        return 0.0
    from scipy.optimize import brentq
    from scipy.stats import nct

    df, crit = n - 1, t_quantile(1 - alpha / 2, n - 1)

    def shortfall(nc: float) -> float:
        lower = float(nct.cdf(-crit, df, nc))  # the wrong-sign tail: tiny, and NaN in scipy far out
        return float(nct.sf(crit, df, nc)) + (lower if math.isfinite(lower) else 0.0) - power

    hi = crit + 3.0
    while shortfall(hi) < 0:
        hi *= 1.5
    nc = brentq(shortfall, 0.0, hi)
    return float(nc * sd / math.sqrt(n))


def _finite(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def sign_verdict(low: float, high: float) -> str:
    """:data:`HELD` when ``[low, high]`` lies above 0, :data:`CONTRADICTED` below 0, else
    :data:`NOT_SUPPORTED` (also for a NaN interval)."""
    if math.isnan(low) or math.isnan(high):
        return NOT_SUPPORTED
    if low > 0:
        return HELD
    if high < 0:
        return CONTRADICTED
    return NOT_SUPPORTED


def between_seeds(values: Sequence[float | None], sems: Sequence[float | None] | None = None,
                  holds: Sequence[bool | None] | None = None, level: float = 0.95) -> dict[str, Any]:
    """Aggregate one quantity measured once per training seed.

    ``values[k]`` is seed k's estimate, ``sems[k]`` its within-seed standard error (over images),
    ``holds[k]`` whether the claim held on seed k by that seed's own rule. Returns::

        mean, se        mean over seeds and its between-seed standard error SD/√n
        low, high       the ``level`` interval mean ± t_{(1+level)/2, n−1}·se (NaN for n < 2)
        sd              between-seed standard deviation (ddof 1)
        within_sem      root mean square of the per-seed SEMs (None without sems)
        excess_sd       sqrt(max(sd² − within_sem², 0)): seed-to-seed spread the SEMs do not explain
        held_fraction   fraction of seeds on which the claim held (None without holds)
        n, values       number of seeds used (finite values only) and the values
        verdict         :func:`sign_verdict` of the interval
        mde             :func:`min_detectable_effect` at 80 % power (two-sided, 5 %), the quantity's units
    """
    vals = _finite(values)
    n = len(vals)
    mean = float(np.mean(vals)) if n else float("nan")
    sd = float(np.std(vals, ddof=1)) if n >= 2 else float("nan")
    se = sd / math.sqrt(n) if n >= 2 else float("nan")
    half = t_quantile((1 + level) / 2, n - 1) * se if n >= 2 else float("nan")
    out: dict[str, Any] = {"mean": mean, "se": se, "low": mean - half, "high": mean + half, "sd": sd,
                           "n": n, "values": [None if v is None else float(v) for v in values]}
    if sems is not None:
        s = _finite(sems)
        out["within_sem"] = math.sqrt(float(np.mean(np.square(s)))) if s else None
        out["excess_sd"] = (math.sqrt(max(sd * sd - out["within_sem"] ** 2, 0.0))
                            if out["within_sem"] is not None and n >= 2 else None)
    else:
        out["within_sem"] = out["excess_sd"] = None
    known = [bool(h) for h in (holds or []) if h is not None]
    out["held_fraction"] = sum(known) / len(known) if known else None
    out["verdict"] = sign_verdict(out["low"], out["high"])
    out["mde"] = min_detectable_effect(sd, n, 1 - level)
    return out


def all_of(verdicts: Iterable[str]) -> str:
    """Verdict of a claim made for every member: held if held for each, contradicted if contradicted
    for at least one, else not supported (also for no members)."""
    vs = list(verdicts)
    if vs and all(v == HELD for v in vs):
        return HELD
    if CONTRADICTED in vs:
        return CONTRADICTED
    return NOT_SUPPORTED
