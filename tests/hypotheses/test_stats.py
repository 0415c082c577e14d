"""fstmatch.hypotheses.stats against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fstmatch.hypotheses.stats import (
    CONTRADICTED,
    HELD,
    NOT_SUPPORTED,
    all_of,
    attenuation_corrected,
    auc_stderr,
    between_seeds,
    perturbed_std,
    reproducibility,
    sem,
    sign_verdict,
    t_quantile,
)

T2 = 4.302652729911275  # t_{0.975} with 2 degrees of freedom (printed tables: 4.303)


def test_sem() -> None:
    assert sem([1.0, 3.0]) == pytest.approx(1.0)  # std 1.414 / sqrt(2)
    assert sem([[1.0, 3.0], [3.0, 5.0]]) == pytest.approx(1.0)  # rows count as their means: 2, 4
    assert sem([2.0]) == 0.0


def test_perturbed_std_matches_a_linear_statistic() -> None:
    # sum of 4 cells each with stderr 0.5 -> std sqrt(4 * 0.25) = 1
    std = perturbed_std(lambda a: float(np.sum(a)), [np.zeros((2, 2))], [np.full((2, 2), 0.5)], draws=4000, seed=1)
    assert std == pytest.approx(1.0, rel=0.05)
    assert perturbed_std(lambda a: 0.0, [np.ones((2, 2))], [None]) == 0.0
    with pytest.raises(ValueError, match="one stderr"):
        perturbed_std(lambda a: 0.0, [np.ones((2, 2))], [])


def test_reproducibility_is_the_mean_cosine() -> None:
    a = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    b = np.array([[[2.0, 2.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    # image 0: cos = 2 / (1 * 2.828) = 1/sqrt(2); image 1: a zero map -> 0
    assert reproducibility(a, b) == pytest.approx((1 / math.sqrt(2) + 0) / 2)
    assert attenuation_corrected(0.5, 0.8) == pytest.approx(0.625)
    assert attenuation_corrected(0.5, 0.0) is None
    with pytest.raises(ValueError, match="same shape"):
        reproducibility(a, b[:1])


def test_auc_stderr_hanley_mcneil() -> None:
    # A = 0.5, 10 positives, 10 negatives: Q1 = 1/3, Q2 = 1/3 -> var = (.25 + 9(1/3 - 1/4) * 2) / 100
    assert auc_stderr(0.5, 10, 10) == pytest.approx(math.sqrt((0.25 + 18 / 12) / 100))
    # A = 0.8, 5 / 20: Q1 = 0.8/1.2 = 2/3, Q2 = 1.28/1.8 = 32/45
    var = (0.16 + 4 * (2 / 3 - 0.64) + 19 * (32 / 45 - 0.64)) / 100
    assert auc_stderr(0.8, 5, 20) == pytest.approx(math.sqrt(var))
    assert auc_stderr(1.0, 10, 10) == 0.0
    assert math.isnan(auc_stderr(0.7, 0, 10)) and math.isnan(auc_stderr(None, 3, 3))


def test_t_quantile() -> None:
    assert t_quantile(0.975, 2) == pytest.approx(T2)
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(0.975, 10_000) == pytest.approx(1.96, abs=1e-3)


def test_between_seeds_by_hand() -> None:
    # values 1, 2, 3: mean 2, SD 1, SE 1/sqrt(3), interval 2 ± 4.3027/sqrt(3) = 2 ± 2.4841 -> contains 0
    a = between_seeds([1.0, 2.0, 3.0], sems=[0.5, 0.5, 0.5], holds=[True, True, False])
    assert a["mean"] == pytest.approx(2.0) and a["sd"] == pytest.approx(1.0)
    assert a["se"] == pytest.approx(1 / math.sqrt(3))
    assert (a["low"], a["high"]) == pytest.approx((2 - T2 / math.sqrt(3), 2 + T2 / math.sqrt(3)))
    assert a["within_sem"] == pytest.approx(0.5)
    assert a["excess_sd"] == pytest.approx(math.sqrt(1 - 0.25))  # sqrt(SD^2 - SEM^2)
    assert a["held_fraction"] == pytest.approx(2 / 3)
    assert a["n"] == 3 and a["verdict"] == NOT_SUPPORTED

    # values 1.0, 1.2, 1.1: mean 1.1, SD 0.1, interval 1.1 ± 4.3027 * 0.1 / sqrt(3) = [0.8516, 1.3484]
    b = between_seeds([1.0, 1.2, 1.1], sems=[0.2, 0.2, 0.2])
    assert (b["low"], b["high"]) == pytest.approx((1.1 - T2 * 0.1 / math.sqrt(3), 1.1 + T2 * 0.1 / math.sqrt(3)))
    assert b["verdict"] == HELD
    assert b["excess_sd"] == 0.0  # the SEM explains all of the spread
    assert b["held_fraction"] is None  # no per-seed verdicts given
    assert between_seeds([-1.0, -1.2, -1.1])["verdict"] == CONTRADICTED
    assert between_seeds([-1.0, -1.2, -1.1])["within_sem"] is None


def test_between_seeds_skips_missing_values_and_needs_two() -> None:
    a = between_seeds([1.0, None, float("nan"), 3.0])
    assert a["n"] == 2 and a["mean"] == pytest.approx(2.0)
    assert a["values"][:2] == [1.0, None]
    one = between_seeds([5.0], sems=[0.1])
    assert one["n"] == 1 and math.isnan(one["se"]) and one["verdict"] == NOT_SUPPORTED
    assert one["excess_sd"] is None


def test_verdict_rules() -> None:
    assert sign_verdict(0.1, 0.3) == HELD
    assert sign_verdict(-0.3, -0.1) == CONTRADICTED
    assert sign_verdict(-0.1, 0.3) == NOT_SUPPORTED
    assert sign_verdict(float("nan"), float("nan")) == NOT_SUPPORTED
    assert all_of([HELD, HELD]) == HELD
    assert all_of([HELD, NOT_SUPPORTED]) == NOT_SUPPORTED
    assert all_of([HELD, CONTRADICTED, NOT_SUPPORTED]) == CONTRADICTED
    assert all_of([]) == NOT_SUPPORTED


def test_min_detectable_effect_matches_the_power_equation() -> None:
    """80 % power, two-sided 5 %: Cohen's one-sample d is 0.994 at n = 10 (G*Power); the exact
    noncentral-t answer is near the textbook (t_.975 + t_.8)·sd/√n and scales with sd."""
    from scipy.stats import nct

    from fstmatch.hypotheses.stats import min_detectable_effect, t_quantile

    assert min_detectable_effect(1.0, 10) == pytest.approx(0.996, abs=0.003)
    assert min_detectable_effect(0.05, 10) == pytest.approx(0.05 * min_detectable_effect(1.0, 10))
    for n in (3, 5, 30):
        mde = min_detectable_effect(2.0, n)
        crit, nc = t_quantile(0.975, n - 1), mde * math.sqrt(n) / 2.0
        assert nct.sf(crit, n - 1, nc) + nct.cdf(-crit, n - 1, nc) == pytest.approx(0.8, abs=1e-6)
        textbook = (t_quantile(0.975, n - 1) + t_quantile(0.8, n - 1)) * 2.0 / math.sqrt(n)
        assert mde == pytest.approx(textbook, rel=0.06)
    assert math.isnan(min_detectable_effect(1.0, 1)) and min_detectable_effect(0.0, 4) == 0.0
    agg = between_seeds([0.1, 0.3, 0.2, 0.4])
    assert agg["mde"] == pytest.approx(min_detectable_effect(agg["sd"], 4))
