"""Sampling estimators: convergence to exact within their standard errors, efficiency, forward
counts, invariance to batching, seeding, and the max_stderr stopping rule."""

from __future__ import annotations

import pytest
import torch

from fstmatch.explain import shapley

from .toys import CellGame


@pytest.fixture
def game3() -> CellGame:
    """3x3 game with every kind of term, so sampled marginals vary."""
    return CellGame(3, n_classes=2, seed=1)


@pytest.fixture
def ones12() -> torch.Tensor:
    return torch.ones(2, 3, 12, 12)


def _zscores(res, exact) -> torch.Tensor:
    return ((res.values - exact.values) / res.stderr).flatten()


@pytest.mark.parametrize(
    ("method", "antithetic", "m"), [("permutation", True, 400), ("permutation", False, 400), ("reference", True, 150)]
)
def test_sampling_converges_to_exact_within_stderr(game3, ones12, method, antithetic, m) -> None:
    exact = shapley(game3, ones12, [0, 1], grid=3, method="exact")
    res = shapley(game3, ones12, [0, 1], grid=3, method=method, n_permutations=m, antithetic=antithetic, seed=3)
    z = _zscores(res, exact)
    assert z.abs().max() < 4.5, z
    # the standard errors are the right size: mean z^2 of 18 cells near 1 (chi-square / dof)
    assert 0.2 < (z**2).mean() < 3.0, z
    # and the error actually shrinks: far below the spread of the values themselves
    assert (res.values - exact.values).abs().max() < 0.1 * exact.values.abs().max()


def test_forward_counts(game3, ones12) -> None:
    perm = shapley(game3, ones12, [0, 1], grid=3, n_permutations=10)
    assert perm.n_forward.tolist() == [2 + 10 * 8] * 2
    assert perm.n_permutations.tolist() == [10, 10]
    assert perm.total_forward == 2 * 82
    odd = shapley(game3, ones12, [0, 1], grid=3, n_permutations=9)  # antithetic rounds up to pairs
    assert odd.n_permutations.tolist() == [10, 10]
    ref = shapley(game3, ones12, [0, 1], grid=3, method="reference", n_permutations=7)
    assert ref.n_forward.tolist() == [2 * 9 * 7] * 2
    assert ref.v_full is None and ref.v_empty is None


@pytest.mark.parametrize("antithetic", [True, False])
def test_permutation_obeys_efficiency(game3, antithetic) -> None:
    images = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    res = shapley(game3, images, [1, 0], grid=3, n_permutations=6, antithetic=antithetic, baseline="mean")
    with torch.no_grad():
        logits = game3(images).double()
        base = game3(images.mean((2, 3), keepdim=True).expand_as(images)).double()
    gap = torch.stack([logits[0, 1] - base[0, 1], logits[1, 0] - base[1, 0]])
    torch.testing.assert_close(res.v_full - res.v_empty, gap, atol=1e-5, rtol=0)
    torch.testing.assert_close(res.values.sum((1, 2)), res.v_full - res.v_empty, atol=1e-10, rtol=0)


def test_antithetic_walk_is_exact_for_pairwise_games(ones12) -> None:
    """An ordering and its reverse give every pair interaction half each: zero variance."""
    game = CellGame(3, n_classes=2, seed=2, products=False, maxes=False)
    exact = shapley(game, ones12, [0, 1], grid=3, method="exact")
    res = shapley(game, ones12, [0, 1], grid=3, n_permutations=4)
    torch.testing.assert_close(res.values, exact.values, atol=1e-5, rtol=0)
    assert res.stderr.max() < 1e-6
    plain = shapley(game, ones12, [0, 1], grid=3, n_permutations=4, antithetic=False)
    assert plain.stderr.max() > 1e-3


@pytest.mark.parametrize("method", ["permutation", "reference"])
def test_results_do_not_depend_on_batch_size(game3, method) -> None:
    images = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    runs = [shapley(game3, images, [0, 1, 0], grid=3, method=method, n_permutations=6, batch_size=b)
            for b in (1, 7, 1000)]
    for r in runs[1:]:
        torch.testing.assert_close(r.values, runs[0].values, atol=1e-6, rtol=0)
        torch.testing.assert_close(r.stderr, runs[0].stderr, atol=1e-6, rtol=0)
        assert torch.equal(r.n_forward, runs[0].n_forward)


def test_rounds_do_not_change_results(game3, monkeypatch) -> None:
    """Fixed budgets are split into rounds to bound memory: same orderings, same values."""
    from fstmatch.explain import _core

    images = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    whole = shapley(game3, images, [0, 1], grid=3, n_permutations=12)
    monkeypatch.setattr(_core, "ROUND_NUMBERS", 2 * 9 * 2)  # 2 antithetic pairs per round
    rounds = shapley(game3, images, [0, 1], grid=3, n_permutations=12)
    torch.testing.assert_close(rounds.values, whole.values, atol=1e-9, rtol=0)
    torch.testing.assert_close(rounds.stderr, whole.stderr, atol=1e-9, rtol=0)
    assert torch.equal(rounds.n_forward, whole.n_forward)


def test_images_do_not_influence_each_other(game3) -> None:
    """Image n's map is the same whether it is explained alone or with others."""
    images = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    together = shapley(game3, images, [0, 1, 1], grid=3, n_permutations=8)
    alone = shapley(game3, images[2:], [1], grid=3, n_permutations=8)
    torch.testing.assert_close(together.values[2:], alone.values, atol=1e-6, rtol=0)


def test_seeded_runs_are_reproducible(game3, ones12) -> None:
    a = shapley(game3, ones12, [0, 1], grid=3, n_permutations=8, seed=11)
    b = shapley(game3, ones12, [0, 1], grid=3, n_permutations=8, seed=11)
    c = shapley(game3, ones12, [0, 1], grid=3, n_permutations=8, seed=12)
    assert torch.equal(a.values, b.values) and torch.equal(a.stderr, b.stderr)
    assert not torch.equal(a.values, c.values)


def test_max_stderr_stops_early_and_reports_its_spend(game3) -> None:
    images = torch.ones(2, 3, 12, 12)
    images[1, :, :4] = 0.0  # image 1: a different game (top row of cells always absent)
    cap = 2000
    res = shapley(game3, images, [0, 0], grid=3, n_permutations=cap, max_stderr=0.02, seed=4)
    used = res.n_permutations
    assert (used < cap).all() and (used % 16 == 0).all()
    assert (res.stderr.flatten(1).amax(1) < 0.02).all()
    assert res.n_forward.tolist() == [2 + int(u) * 8 for u in used]
    # a run stopped after P orderings equals a fixed-budget run of P orderings (same orderings)
    fixed = shapley(game3, images[:1], [0], grid=3, n_permutations=int(used[0]), seed=4)
    torch.testing.assert_close(fixed.values[0], res.values[0], atol=1e-9, rtol=0)
    # the cap wins when the target is unreachable
    capped = shapley(game3, images, [0, 0], grid=3, n_permutations=32, max_stderr=1e-9)
    assert capped.n_permutations.tolist() == [32, 32]
