"""Ground-truth scores of attribution maps (``fstmatch.explain.localisation``) on hand-made maps and
masks whose scores are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fstmatch.explain.localisation import (
    area_share,
    auroc,
    bootstrap_ci,
    lift,
    mass_share,
    pointing_game,
    rank_correlation,
)

MASK = np.zeros((4, 4))
MASK[:, :1] = 1.0  # the left column: area 1/4


def test_mass_share_counts_positive_mass_only() -> None:
    a = np.zeros((4, 4))
    a[0, 0], a[0, 3], a[1, 3] = 3.0, 1.0, -5.0  # the negative pixel is ignored
    assert mass_share(a, MASK) == pytest.approx(0.75)
    assert area_share(MASK) == 0.25
    assert math.isnan(mass_share(-np.ones((4, 4)), MASK))
    # lift = mean share / mean area: a map all on the mask gives 1 / 0.25 = 4; an even map gives 1
    assert lift(np.array([1.0, 0.25]), np.array([0.25, 0.25])) == pytest.approx(0.625 / 0.25)
    assert lift(np.array([mass_share(np.ones((4, 4)), MASK)]), np.array([0.25])) == pytest.approx(1.0)


def test_pointing_game_with_and_without_ties() -> None:
    a = np.zeros((4, 4))
    a[2, 0] = 1.0
    assert pointing_game(a, MASK) == 1.0
    a[2, 0], a[2, 2] = 0.0, 1.0
    assert pointing_game(a, MASK) == 0.0
    tied = np.zeros((4, 4))
    tied[0, :2] = 1.0  # two maximal pixels, one on the mask
    assert pointing_game(tied, MASK) == 0.5
    assert math.isnan(pointing_game(a, np.zeros((4, 4))))


def test_auroc_perfect_reversed_chance_and_undefined() -> None:
    cols = np.tile(np.arange(4.0)[::-1], (4, 1))  # the left column highest
    assert auroc(cols, MASK) == 1.0
    assert auroc(-cols, MASK) == 0.0
    assert auroc(np.ones((4, 4)), MASK) == 0.5  # all tied
    a = np.zeros((4, 4))
    a[:, 0] = [5, 5, 0.5, 0.5]
    a[:, 1:] = np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0]])
    # mask scores 5, 5, 0.5, 0.5 vs six 1s and six 0s: (12 + 12 + 6 + 6) / 48
    assert auroc(a, MASK) == pytest.approx(36 / 48)
    assert math.isnan(auroc(a, np.ones((4, 4))))


def test_rank_correlation_of_absolute_values() -> None:
    a = np.arange(16.0).reshape(4, 4)
    assert rank_correlation(a, -a) == pytest.approx(1.0)  # |.|: the sign does not matter
    assert rank_correlation(a, a[::-1, ::-1]) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(a, np.zeros((4, 4))))


def test_bootstrap_interval_covers_the_mean_and_drops_nans() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    est, lo, hi = bootstrap_ci(x)
    assert est == 2.5 and 1.0 <= lo < 2.5 < hi <= 4.0
    assert bootstrap_ci(np.full(5, 7.0)) == (7.0, 7.0, 7.0)
    est, lo, hi = bootstrap_ci([np.array([1.0, 0.5]), np.array([0.5, 0.5])], lift)
    assert est == pytest.approx(1.5) and lo == pytest.approx(1.0) and hi == pytest.approx(2.0)
    assert math.isnan(bootstrap_ci(np.array([1.0]))[1])
