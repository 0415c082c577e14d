"""Sampling estimators: convergence to exact within their standard errors, efficiency, forward
counts, invariance to batching, seeding, and the max_stderr stopping rule."""

from __future__ import annotations

import math

import pytest
import torch

from fstmatch.explain import shapley

from .toys import CellGame


def _zscores(res, exact) -> torch.Tensor:
    return ((res.values - exact.values) / res.stderr).flatten()


@pytest.mark.parametrize(
    ("method", "antithetic", "m"), [("permutation", True, 400), ("permutation", False, 400), ("reference", True, 150)]
)
def test_sampling_converges_to_exact_within_stderr(game3, ones12, method, antithetic, m) -> None:
    exact = shapley(game3, ones12, [0, 1], grid=3, estimator="exact")
    res = shapley(game3, ones12, [0, 1], grid=3, estimator=method, budget=m, antithetic=antithetic, seed=3)
    z = _zscores(res, exact)
    assert z.abs().max() < 4.5, z
    # the standard errors are the right size: mean z^2 of 18 cells near 1 (chi-square / dof)
    assert 0.2 < (z**2).mean() < 3.0, z
    # and the error actually shrinks: far below the spread of the values themselves
    assert (res.values - exact.values).abs().max() < 0.1 * exact.values.abs().max()


def test_forward_counts(game3, ones12) -> None:
    perm = shapley(game3, ones12, [0, 1], grid=3, estimator="permutation", budget=10)
    assert perm.n_forward.tolist() == [2 + 10 * 8] * 2
    assert perm.n_permutations.tolist() == [10, 10]
    assert perm.total_forward == 2 * 82
    odd = shapley(game3, ones12, [0, 1], grid=3, estimator="permutation", budget=9)  # antithetic rounds up to pairs
    assert odd.n_permutations.tolist() == [10, 10]
    ref = shapley(game3, ones12, [0, 1], grid=3, estimator="reference", budget=7)
    assert ref.n_forward.tolist() == [2 * 9 * 7] * 2
    assert ref.v_full is None and ref.v_empty is None


@pytest.mark.parametrize("antithetic", [True, False])
def test_permutation_obeys_efficiency(game3, antithetic) -> None:
    images = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    res = shapley(game3, images, [1, 0], grid=3, estimator="permutation", budget=6, antithetic=antithetic, baselines="mean")
    with torch.no_grad():
        logits = game3(images).double()
        base = game3(images.mean((2, 3), keepdim=True).expand_as(images)).double()
    gap = torch.stack([logits[0, 1] - base[0, 1], logits[1, 0] - base[1, 0]])
    torch.testing.assert_close(res.v_full - res.v_empty, gap, atol=1e-5, rtol=0)
    torch.testing.assert_close(res.values.sum((1, 2)), res.v_full - res.v_empty, atol=1e-10, rtol=0)


def test_antithetic_walk_is_exact_for_pairwise_games(ones12) -> None:
    """An ordering and its reverse give every pair interaction half each: zero variance."""
    game = CellGame(3, n_classes=2, seed=2, products=False, maxes=False)
    exact = shapley(game, ones12, [0, 1], grid=3, estimator="exact")
    res = shapley(game, ones12, [0, 1], grid=3, estimator="permutation", budget=4)
    torch.testing.assert_close(res.values, exact.values, atol=1e-5, rtol=0)
    assert res.stderr.max() < 1e-6
    plain = shapley(game, ones12, [0, 1], grid=3, estimator="permutation", budget=4, antithetic=False)
    assert plain.stderr.max() > 1e-3


@pytest.mark.parametrize("method", ["permutation", "reference"])
def test_results_do_not_depend_on_batch_size(game3, method) -> None:
    images = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    runs = [shapley(game3, images, [0, 1, 0], grid=3, estimator=method, budget=6, batch_size=b)
            for b in (1, 7, 1000)]
    for r in runs[1:]:
        torch.testing.assert_close(r.values, runs[0].values, atol=1e-6, rtol=0)
        torch.testing.assert_close(r.stderr, runs[0].stderr, atol=1e-6, rtol=0)
        assert torch.equal(r.n_forward, runs[0].n_forward)


def test_rounds_do_not_change_results(game3, monkeypatch) -> None:
    """Fixed budgets are split into rounds to bound memory: same orderings, same values."""
    from fstmatch.explain import _core

    images = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    whole = shapley(game3, images, [0, 1], grid=3, estimator="permutation", budget=12)
    monkeypatch.setattr(_core, "ROUND_NUMBERS", 2 * 9 * 2)  # 2 antithetic pairs per round
    rounds = shapley(game3, images, [0, 1], grid=3, estimator="permutation", budget=12)
    torch.testing.assert_close(rounds.values, whole.values, atol=1e-9, rtol=0)
    torch.testing.assert_close(rounds.stderr, whole.stderr, atol=1e-9, rtol=0)
    assert torch.equal(rounds.n_forward, whole.n_forward)


def test_images_do_not_influence_each_other(game3) -> None:
    """Image n's map is the same whether it is explained alone or with others."""
    images = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    together = shapley(game3, images, [0, 1, 1], grid=3, budget=8)
    alone = shapley(game3, images[2:], [1], grid=3, budget=8)
    torch.testing.assert_close(together.values[2:], alone.values, atol=1e-6, rtol=0)


def test_seeded_runs_are_reproducible(game3, ones12) -> None:
    a = shapley(game3, ones12, [0, 1], grid=3, budget=8, seed=11)
    b = shapley(game3, ones12, [0, 1], grid=3, budget=8, seed=11)
    c = shapley(game3, ones12, [0, 1], grid=3, budget=8, seed=12)
    assert torch.equal(a.values, b.values) and torch.equal(a.stderr, b.stderr)
    assert not torch.equal(a.values, c.values)


def test_max_stderr_stops_early_and_reports_its_spend(game3) -> None:
    images = torch.ones(2, 3, 12, 12)
    images[1, :, :4] = 0.0  # image 1: a different game (top row of cells always absent)
    cap = 2000
    res = shapley(game3, images, [0, 0], grid=3, estimator="permutation", budget=cap, max_stderr=0.02, seed=4)
    used = res.n_permutations
    assert (used < cap).all() and (used % 16 == 0).all()
    assert (res.stderr.flatten(1).amax(1) < 0.02).all()
    assert res.n_forward.tolist() == [2 + int(u) * 8 for u in used]
    # a run stopped after P orderings equals a fixed-budget run of P orderings (same orderings)
    fixed = shapley(game3, images[:1], [0], grid=3, estimator="permutation", budget=int(used[0]), seed=4)
    torch.testing.assert_close(fixed.values[0], res.values[0], atol=1e-9, rtol=0)
    # the cap wins when the target is unreachable
    capped = shapley(game3, images, [0, 0], grid=3, estimator="permutation", budget=32, max_stderr=1e-9)
    assert capped.n_permutations.tolist() == [32, 32]


def test_stratified_walk_obeys_efficiency_and_beats_the_plain_mean(game3) -> None:
    """With enough orderings the walk's estimate is post-stratified by position: it still sums to
    v(all) - v(empty), and on a game whose marginals depend on when a cell is added its error is
    below the plain antithetic mean's."""
    from fstmatch.explain._core import _StratumSums

    images = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    res = shapley(game3, images, [0, 1], grid=3, estimator="permutation", budget=64, seed=5)
    torch.testing.assert_close(res.values.sum((1, 2)), res.v_full - res.v_empty, atol=1e-10, rtol=0)

    # a 12-player game v(S) = (sum_{i in S} a_i)^3: cell i's marginal grows with how much is already
    # in S, i.e. with its position; third-order terms, so antithetic pairs are not exact on it
    a = torch.linspace(0.2, 1.0, 12, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    err_plain, err_strat = 0.0, 0.0
    codes = torch.arange(2**12)
    z = ((codes.view(-1, 1) >> torch.arange(12)) & 1).double()  # every coalition
    v_all = (z @ a) ** 3
    size = z.sum(1).long()
    weight = torch.tensor([math.factorial(k) * math.factorial(11 - k) / math.factorial(12) for k in range(12)],
                          dtype=torch.float64)
    exact = torch.stack([((v_all[codes | (1 << i)] - v_all) * weight[size.clamp(max=11)] * (1 - z[:, i])).sum()
                         for i in range(12)])
    for _ in range(30):
        base = [torch.randperm(12, generator=gen) for _ in range(16)]
        orders = torch.stack([o for b in base for o in (b, b.flip(0))])
        pos = orders.argsort(1)
        prefix = (pos.unsqueeze(1) < torch.arange(0, 13).view(1, -1, 1)).double()  # (32, 13, 12)
        v = (prefix @ a) ** 3
        marg = v.diff(dim=1).gather(1, pos)  # (32, 12) by cell
        pairs = marg.view(16, 2, 12).mean(1)
        sums = _StratumSums(1, 12, antithetic=True)
        sums.add(torch.tensor([0]), pairs.unsqueeze(0), pos[0::2])
        values, se = sums.estimate(torch.tensor([0]))
        assert torch.isfinite(se).all()
        err_plain += float(((pairs.mean(0) - exact) ** 2).sum())
        err_strat += float(((values[0] - exact) ** 2).sum())
    assert err_strat < 0.5 * err_plain, (err_strat, err_plain)  # measured: 3.6x lower


def test_strata_depend_on_counts_only() -> None:
    """Two antithetic pairs: one stratum, the plain mean of the pairs; the estimate never looks at
    values to choose strata."""
    from fstmatch.explain._core import _StratumSums

    gen = torch.Generator().manual_seed(1)
    orders = torch.stack([torch.randperm(9, generator=gen) for _ in range(2)])
    samples = torch.randn(1, 2, 9, generator=gen, dtype=torch.float64)
    sums = _StratumSums(1, 9, antithetic=True)
    sums.add(torch.tensor([0]), samples, orders.argsort(1))
    values, se = sums.estimate(torch.tensor([0]))
    torch.testing.assert_close(values[0], samples[0].mean(0))
    torch.testing.assert_close(se[0], samples[0].std(0) / 2**0.5)
