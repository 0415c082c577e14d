"""Shapley values of grid cells: the public :func:`shapley`, the walk, ``auto``, ``reference`` and ``exact``.

Players are the ``G*G`` cells of a grid over the image; ``v(S)`` is the target logit of the image
with the cells outside ``S`` replaced by the baseline (docs/method.md §3). Estimators:

- ``spline`` (the default, ``_spline.py``) and ``kernel`` / ``leverage`` / ``unbiased``
  (``_regression.py``): regressions on sampled coalition pairs.
- ``permutation``: permutation walk. One ordering of the cells gives a marginal for every
  cell by adding cells one at a time. ``v(∅)`` and ``v(all)`` are the same for every ordering, so
  they are evaluated once per image: ``P`` orderings cost ``2 + P*(G*G - 1)`` forwards per image.
  Antithetic (default): orderings come in pairs (an ordering, then its reverse); the pair mean is one
  sample for the standard error. Every ordering's marginals sum to ``v(all) - v(∅)``, so the
  estimate obeys efficiency exactly.
- ``reference``: the paper's estimator. For each cell separately, ``m`` random orderings, two forwards
  each (the cells before it, then plus it): ``2*G*G*m`` forwards per image.
- ``exact``: all ``2**(G*G)`` coalitions with the Shapley weights (``G*G <= 12``).

The orderings depend only on ``seed`` (shared by all images, drawn one at a time, so a larger budget
extends a smaller one); batching only changes how coalitions are grouped into forwards.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import torch
from torch import nn

from fstmatch.explain import _dist, _utils
from fstmatch.explain._regression import REGRESSION_METHODS, RegressionRun, pairs_for, regression
from fstmatch.explain._result import ShapleyResult
from fstmatch.explain._spline import SplineRun
from fstmatch.explain._utils import Model, ShapleyInputError, ValueFunction

METHODS = ("spline", "auto", "permutation", *REGRESSION_METHODS, "reference", "exact")
#: The method ``shapley()`` and ``fstmatch explain`` use by default.
DEFAULT_METHOD = "spline"
#: Methods that stop on ``max_stderr``.
ADAPTIVE_METHODS = ("spline", "auto", "permutation", *REGRESSION_METHODS)
#: ``auto``: share of the budget each of its two pilots spends (at least 4 orderings' worth each)
PILOT_SHARE = 1 / 32
#: ``auto``: smallest pilot (orderings' worth): two antithetic pairs give the walk a stderr, and
#: 2 (n - 1) pairs the regression a sandwich variance; below twice this, ``auto`` runs the walk only
MIN_PILOT = 4
#: ``auto``: Leverage SHAP's coalitions are drawn with ``seed + AUTO_SEED_OFFSET`` (independent of the walk)
AUTO_SEED_OFFSET = 7919
#: Default budget: orderings per image for ``permutation`` (32 antithetic pairs; docs/explain.md says
#: why; the regression methods spend as many forwards) and orderings per cell for ``reference``
#: (the paper's m).
DEFAULT_PERMUTATIONS = {"spline": 64, "auto": 64, "permutation": 64, "kernel": 64, "leverage": 64, "unbiased": 64, "reference": 100}
#: Orderings added per round when stopping on ``max_stderr``.
ROUND = 16
#: Fixed budgets run in rounds of at most this many (image, ordering, cell) float64 numbers.
ROUND_NUMBERS = 1 << 22
#: Largest number of players ``exact`` enumerates (2**12 = 4096 coalitions).
MAX_EXACT_PLAYERS = 12


def shapley(
    model: nn.Module | Model,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int,
    grid: int = 16,
    n_permutations: int | None = None,
    method: str = DEFAULT_METHOD,
    antithetic: bool = True,
    baseline: str | float | torch.Tensor = "zero",
    batch_size: int = 256,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    max_stderr: float | None = None,
    progress: bool = False,
    optimize: bool = True,
    distributed: bool | None = None,
) -> ShapleyResult:
    """Shapley values of the G x G grid cells of each image for the target logit.

    Args:
        model: a ``torch.nn.Module`` or callable mapping float (B, C, H, W) to logits (B, K). Masking
            acts on the model's input as given: fstmatch models take [0, 1] pixels and normalise
            inside, so the zero baseline means black pixels. A module in train mode is run in eval
            mode (with a warning) and restored afterwards; the module itself is never modified.
        images: (N, C, H, W) float; H and W must be multiples of ``grid``.
        targets: (N,) class indices (or one int for all images); the value is ``logits[:, target]``.
        grid: cells per side (G); G*G players.
        n_permutations: the budget: orderings per image (``permutation`` and ``auto``, default 64,
            rounded up to even; ``spline``, ``kernel``, ``leverage``, ``unbiased`` spend as many forwards,
            ``P * (G*G - 1)`` plus the two ends; the cap when ``max_stderr`` is set) or orderings per
            cell (``reference``, the paper's m, default 100). Ignored by ``exact``.
        method: ``"spline"`` (size-spline KernelSHAP: the fewest forwards for a given error on every
            game measured), ``"auto"`` (per image, the walk or Leverage SHAP, chosen from a pilot of both),
            ``"permutation"`` (post-stratified antithetic walk), ``"kernel"`` (paired KernelSHAP),
            ``"leverage"`` (Leverage SHAP), ``"unbiased"`` (unbiased KernelSHAP), ``"reference"``
            (the paper's) or ``"exact"`` (G*G <= 12). docs/explain.md compares them.
        antithetic: pair each ordering with its reverse (``permutation`` only; ``auto`` always does).
        baseline: ``"zero"``, ``"mean"`` (per-image mean colour), ``"blur"`` (Gaussian, sigma = one
            cell), a number, or a tensor broadcastable to (N, C, H, W).
        batch_size: masked images per forward pass; bounds peak memory.
        seed: seeds the orderings (the same orderings for every image).
        dtype: e.g. ``torch.bfloat16``: run a copy of the model with weights (and inputs) in that
            dtype (autocast for a plain callable). Faster on CPUs with AMX, adds noise (docs).
        max_stderr: sampling methods but ``reference``: add rounds of 16 orderings' worth until every
            cell's standard error is below this (per image), or the cap is reached; ``n_forward``
            reports the spend.
        progress: show a tqdm bar (forwards) on stderr.
        optimize: run a deep copy with BatchNorm folded into convolutions and channels_last memory
            format (same values up to float rounding); False calls the model as given.
        distributed: split the images across ``torch.distributed`` ranks and gather the result on
            every rank (all ranks must pass the same images). ``None``: when a process group with
            more than one rank is initialised.

    Returns:
        :class:`ShapleyResult` with float64 CPU tensors.

    Raises:
        ShapleyInputError (a ``UserError`` and a ``ValueError``): bad arguments, a grid that does not
        divide the image, targets out of range, non-finite logits, ``exact`` on a large grid.
    """
    if method not in METHODS:
        raise ShapleyInputError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ShapleyInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    cell = _utils.check_images(images, grid)
    tg = _utils.check_targets(targets, images.shape[0])
    n_players = grid * grid
    if method == "exact":
        if n_players > MAX_EXACT_PLAYERS:
            raise ShapleyInputError(
                f"method='exact' enumerates 2**{n_players} = {2 ** n_players:,} coalitions for grid={grid}; "
                f"it is limited to grid*grid <= {MAX_EXACT_PLAYERS} (4,096 coalitions): use 'permutation'"
            )
        n_perm = 0
    else:
        n_perm = DEFAULT_PERMUTATIONS[method] if n_permutations is None else n_permutations
        if isinstance(n_perm, bool) or not isinstance(n_perm, int) or n_perm < 1:
            raise ShapleyInputError(f"n_permutations must be a positive integer, got {n_permutations!r}")
        if method in ("permutation", "auto") and (antithetic or method == "auto") and n_perm % 2:
            n_perm += 1
    if not antithetic and method != "permutation":
        raise ShapleyInputError(f"antithetic=False applies to method='permutation' only, not {method!r}")
    if max_stderr is not None:
        if method not in ADAPTIVE_METHODS:
            raise ShapleyInputError(f"max_stderr applies to the methods {ADAPTIVE_METHODS} only, not {method!r}")
        if not max_stderr > 0:
            raise ShapleyInputError(f"max_stderr must be > 0, got {max_stderr!r}")

    if distributed is None:
        distributed = _dist.world_size() > 1
    run = dict(grid=grid, cell=cell, method=method, n_perm=n_perm, antithetic=antithetic,
               baseline=baseline, batch_size=batch_size, seed=seed, dtype=dtype,
               max_stderr=max_stderr, progress=progress, optimize=optimize)
    if distributed and _dist.world_size() > 1:
        return _dist.sharded(_run_local, model, images, tg, run)
    return _run_local(model, images, tg, **run)


def _run_local(
    model: Model, images: torch.Tensor, targets: torch.Tensor, *, grid: int, cell: tuple[int, int],
    method: str, n_perm: int, antithetic: bool, baseline, batch_size: int, seed: int,
    dtype: torch.dtype | None, max_stderr: float | None, progress: bool, optimize: bool,
) -> ShapleyResult:
    device, float_dtype = _utils.model_device(model, images)
    x = images.detach().to(device=device, dtype=float_dtype)
    base = _utils.make_baseline(baseline, x, cell).detach()
    n, n_players = x.shape[0], grid * grid
    total = _planned_forwards(method, n, n_players, n_perm, antithetic, max_stderr)
    bar = _progress_bar(total, progress)
    try:
        with _utils.prepared_model(model, optimize=optimize, dtype=dtype, device=device, probe=x[:1]) as (fn, in_dtype):
            walker = (_incremental_walker(fn, x, base, targets, grid, in_dtype, batch_size)
                      if method in ("permutation", "auto") and optimize else None)
            vf = ValueFunction(
                fn, x, base, targets, grid, batch_size=batch_size, input_dtype=in_dtype,
                channels_last=optimize and isinstance(model, nn.Module), progress=bar.update if bar else None,
                walker=walker,
            )
            if method == "exact":
                est = _exact(vf, n, n_players)
            elif method == "reference":
                est = _reference(vf, n, n_players, n_perm, seed)
            elif method == "auto":
                est = _auto(vf, n, n_players, n_perm, seed, max_stderr)
            elif method == "spline":
                est = regression(vf, n, n_players, method, n_perm, seed, max_stderr, ROUND,
                                 make_run=lambda v0, v1, pairs: SplineRun(vf, n, n_players, seed, v0, v1, pairs))
            elif method in REGRESSION_METHODS:
                est = regression(vf, n, n_players, method, n_perm, seed, max_stderr, ROUND)
            else:
                est = _permutation(vf, n, n_players, n_perm, antithetic, seed, max_stderr)
    finally:
        if bar is not None:
            bar.close()
    values, stderr, n_used, v_full, v_empty = est[:5]
    return ShapleyResult(
        values=values.view(n, grid, grid), stderr=stderr.view(n, grid, grid), n_forward=vf.n_forward,
        n_permutations=n_used, targets=targets.clone(), v_full=v_full, v_empty=v_empty, method=method,
        grid=grid, seed=seed, dtype=str(dtype or images.dtype).replace("torch.", ""),
        extra=est[5] if len(est) > 5 else {},
    )


def _incremental_walker(fn, x: torch.Tensor, base: torch.Tensor, targets: torch.Tensor, grid: int,
                        in_dtype: torch.dtype | None, batch_size: int):
    """The incremental walk evaluator where it applies (fstmatch ResNet-18/34 on CPU in the images'
    float dtype), else None. On a GPU the batched full forward is faster than many small windows."""
    from fstmatch.explain import _incremental

    if x.device.type != "cpu" or in_dtype is not None or not isinstance(fn, nn.Module) or not _incremental.supports(fn):
        return None
    if any(p.dtype != x.dtype for p in fn.parameters()):
        return None
    walker = _incremental.ResNetWalker(fn, x, base, targets, grid,
                                       walks_per_batch=min(batch_size, _incremental.WALKS_PER_BATCH))
    worth_it = walker.step_cost <= _incremental.MAX_STEP_COST and walker.forward_macs >= _incremental.MIN_FORWARD_MACS
    return walker if walker.n_incremental > 0 and worth_it else None


def _planned_forwards(method: str, n: int, p: int, m: int, antithetic: bool, max_stderr: float | None) -> int:
    if method == "exact":
        return n * 2**p
    if method == "reference":
        return n * 2 * p * m
    if method in (*REGRESSION_METHODS, "spline"):
        return n * (2 + 2 * pairs_for(m, p))
    return n * (2 + m * (p - 1))


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="fwd", file=sys.stderr, desc="shapley", dynamic_ncols=True)


# ----------------------------------------------------------------------------------------------------
# Estimators. Each returns (values (N, P), stderr (N, P), n_used (N,), v_full, v_empty).

Estimate = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]


def _draw_orderings(gen: torch.Generator, count: int, n_players: int, antithetic: bool) -> torch.Tensor:
    """(count, P) orderings; antithetic: [pi_0, reversed pi_0, pi_1, reversed pi_1, ...].

    Drawn one at a time so the sequence does not depend on how many are asked for at once.
    """
    if antithetic:
        base = [torch.randperm(n_players, generator=gen) for _ in range(count // 2)]
        return torch.stack([o for b in base for o in (b, b.flip(0))])
    return torch.stack([torch.randperm(n_players, generator=gen) for _ in range(count)])


class _Walk:
    """The permutation walk as a resumable state: ``run`` adds orderings for some images (the same
    orderings for all of them, drawn from one generator), ``estimate`` gives the post-stratified
    values (efficiency restored) and standard errors at any point."""

    def __init__(self, vf: ValueFunction, n: int, n_players: int, antithetic: bool, seed: int,
                 v_empty: torch.Tensor, v_full: torch.Tensor) -> None:
        self.vf, self.n_players, self.antithetic = vf, n_players, antithetic
        self.group = 2 if antithetic else 1  # orderings per independent sample
        self.sums = _StratumSums(n, n_players, antithetic)
        self.gen = torch.Generator().manual_seed(seed)
        self.v_empty, self.v_full = v_empty, v_full
        # orderings per round of a fixed budget: as many as keep the per-round bookkeeping
        # (images x orderings x cells float64) under ~2**22 numbers
        self.per_round = max(1, ROUND_NUMBERS // (n * n_players)) * self.group

    def run(self, active: torch.Tensor, count: int) -> None:
        """Add ``count`` orderings (even when antithetic) for the images ``active``."""
        p = self.n_players
        while count > 0 and active.numel():
            c = min(self.per_round, count)
            count -= c
            orders = _draw_orderings(self.gen, c, p, self.antithetic)  # (c, P)
            pos = orders.argsort(dim=1)  # (c, P) position of each cell in each ordering
            v = self.vf.walks(active, orders)  # (a, c, P-1): v after the first t+1 cells, t = 0..P-2
            a = active.numel()
            walk = torch.cat([self.v_empty[active].view(a, 1, 1).expand(a, c, 1), v,
                              self.v_full[active].view(a, 1, 1).expand(a, c, 1)], dim=2)
            marg = walk.diff(dim=2).gather(2, pos.unsqueeze(0).expand(a, -1, -1))  # (a, c, P) by cell
            samples = marg.view(a, c // self.group, self.group, p).mean(dim=2)
            self.sums.add(active, samples, pos[::self.group])

    def estimate(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, stderr = self.sums.estimate(images)
        return _restore_efficiency(values, stderr, self.v_full[images] - self.v_empty[images]), stderr

    def used(self) -> torch.Tensor:
        """(N,) orderings spent per image."""
        return self.sums.k * self.group


def _ends(vf: ValueFunction, n: int, n_players: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(v_empty, v_full), each (N,): evaluated once per image, shared by every estimate."""
    ends = vf.evaluate(torch.arange(n), torch.stack([torch.zeros(n_players, dtype=torch.bool),
                                                     torch.ones(n_players, dtype=torch.bool)]))
    return ends[:, 0], ends[:, 1]


def _permutation(
    vf: ValueFunction, n: int, n_players: int, n_perm: int, antithetic: bool, seed: int, max_stderr: float | None
) -> Estimate:
    v_empty, v_full = _ends(vf, n, n_players)
    walk = _Walk(vf, n, n_players, antithetic, seed, v_empty, v_full)
    if max_stderr is None:
        walk.run(torch.arange(n), n_perm)
    else:
        active, drawn = torch.arange(n), 0
        while drawn < n_perm and active.numel():
            count = min(ROUND, n_perm - drawn)
            walk.run(active, count)
            drawn += count
            _, se = walk.sums.estimate(active)
            done = (se.amax(dim=1) < max_stderr) & (walk.sums.k[active] >= 2)
            active = active[~done]
    values, stderr = walk.estimate(torch.arange(n))
    return values, stderr, walk.used(), v_full, v_empty


def _auto(vf: ValueFunction, n: int, n_players: int, n_perm: int, seed: int, max_stderr: float | None):
    """Choose per image between the walk and Leverage SHAP from a pilot of both, then combine.

    Pilot: ``PILOT_SHARE`` of the budget (at least 4 orderings' worth) for each of the antithetic
    walk and ``leverage``, on independent samples. Each image then spends the rest of its budget on
    the estimator with the smaller variance per unit of compute (the walk's from its pilot's stderr,
    times the incremental walker's cost per step relative to a full forward where one runs; the
    regression's large-sample variance predicted from its pilot: ``RegressionRun.variance_per_pair``),
    and returns that estimator's estimate and stderr (its pilot included). The other pilot is not
    mixed in: with a pilot's few samples its stderr is too noisy to weight it by (measured: an
    inverse-variance mix was worse than either estimator on a toy game). Returns the estimate and
    ``extra``: ``auto_walk`` (N,) bool, the choice per image.
    """
    v_empty, v_full = _ends(vf, n, n_players)
    everyone = torch.arange(n)
    walk = _Walk(vf, n, n_players, True, seed, v_empty, v_full)
    if n_perm < 2 * MIN_PILOT or n_players < 4:  # too small a budget (or game) to try both: the walk
        walk.run(everyone, n_perm)
        values, stderr = walk.estimate(everyone)
        return values, stderr, walk.used(), v_full, v_empty, {"auto_walk": torch.ones(n, dtype=torch.bool)}
    reg = RegressionRun(vf, n, n_players, "leverage", seed + AUTO_SEED_OFFSET, v_empty, v_full)
    pilot = min(max(MIN_PILOT, 2 * round(n_perm * PILOT_SHARE / 2)), n_perm // 4 * 2)
    walk.run(everyone, pilot)
    reg.keep_samples()
    reg.run(everyone, pairs_for(pilot, n_players))
    _, se_w = walk.estimate(everyone)
    # compare the two per forward: the walk's pilot variance (unbiased at any size) against the
    # regression's predicted large-sample variance (its small-sample jackknife overstates it)
    walk_const = torch.nan_to_num((se_w**2).sum(1), nan=math.inf) * pilot * (n_players - 1)
    reg_const = reg.variance_per_pair(everyone) * 2
    reg.kept = None
    # per unit of compute: incremental walks cost a fraction of a full forward per step (the
    # walker's multiply-add count; deterministic, unlike a timing)
    step_cost = vf.walker.step_cost if vf.walker is not None else 1.0
    use_walk = walk_const * step_cost <= reg_const
    reg.freeze(everyone[use_walk])

    def chosen(images):
        vw, sw = walk.estimate(images)
        vl, sl = reg.estimate(images)
        pick = use_walk[images].view(-1, 1)
        return torch.where(pick, vw, vl), torch.where(pick, sw, sl)

    rest = n_perm - 2 * pilot
    step = rest if max_stderr is None else ROUND
    active = everyone
    while rest > 0 and active.numel():
        count = min(step, rest)
        rest -= count
        walk.run(active[use_walk[active]], count)
        reg.run(active[~use_walk[active]], pairs_for(count, n_players))
        if max_stderr is not None:
            _, se = chosen(active)
            done = se.amax(dim=1) < max_stderr
            reg.freeze(active[done & ~use_walk[active]])
            active = active[~done]
    values, stderr = chosen(everyone)
    used = (vf.n_forward - 2 + (n_players - 2)) // (n_players - 1)
    return values, stderr, used, v_full, v_empty, {"auto_walk": use_walk}


class _StratumSums:
    """Running sums of the walk's samples by cell and by position stratum (post-stratification).

    A sample is one ordering's marginal (plain) or an antithetic pair's mean; its stratum is the
    cell's position in the (first) ordering, folded (``min(p, P-1-p)``) for pairs, whose two
    orderings hold the cell at mirrored positions. The estimate of a cell is the mean of its
    stratum means weighted by each stratum's probability: unbiased given the counts, and free of
    the variance *between* positions (a cell added to a near-empty image contributes differently
    from one added to a near-full image). The number of strata per cell is the largest power of
    two up to ``k / 4`` samples (at most ``FINE``) with at least 2 samples in each stratum, so it
    depends on the counts only, never on the values. One stratum = the plain mean.
    """

    FINE = 16  # finest strata; coarser levels merge neighbours (floor(f*H/F) nests)

    def __init__(self, n: int, n_players: int, antithetic: bool) -> None:
        self.n_players = n_players
        self.folded = antithetic
        span = (n_players + 1) // 2 if antithetic else n_players  # distinct (folded) positions
        p = torch.arange(n_players)
        f = torch.minimum(p, n_players - 1 - p) if antithetic else p
        self.fine_of_position = f * self.FINE // span  # (P,) fine stratum of each position
        # probability of each fine stratum under a uniformly random position
        self.fine_weight = torch.bincount(self.fine_of_position, minlength=self.FINE).double() / n_players
        shape = (n, n_players, self.FINE)
        self.cnt = torch.zeros(shape, dtype=torch.float64)
        self.s1 = torch.zeros(shape, dtype=torch.float64)
        self.s2 = torch.zeros(shape, dtype=torch.float64)
        self.k = torch.zeros(n, dtype=torch.long)

    def add(self, images: torch.Tensor, samples: torch.Tensor, pos: torch.Tensor) -> None:
        """samples (A, k, P) by cell for ``images`` (A,); pos (k, P): each cell's position."""
        a, k, p = samples.shape
        onehot = torch.nn.functional.one_hot(self.fine_of_position[pos], self.FINE).double()  # (k, P, F)
        self.cnt[images] += onehot.sum(0).expand(a, p, self.FINE)
        self.s1[images] += torch.einsum("akp,kpf->apf", samples, onehot)
        self.s2[images] += torch.einsum("akp,kpf->apf", samples**2, onehot)
        self.k[images] += k

    def estimate(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, stderr), each (A, P); stderr NaN where an image has fewer than 2 samples."""
        cnt, s1, s2 = self.cnt[images], self.s1[images], self.s2[images]
        k = self.k[images].view(-1, 1)
        values = torch.zeros(cnt.shape[:2], dtype=torch.float64)
        var = torch.zeros_like(values)
        chosen = torch.zeros(cnt.shape[:2], dtype=torch.bool)
        levels = self.FINE  # a power of two: halve until one stratum
        while levels >= 1:
            size = self.FINE // levels
            c, m1, m2 = (t.view(*t.shape[:2], levels, size).sum(3) for t in (cnt, s1, s2))
            w = self.fine_weight.view(levels, size).sum(1)
            allowed = (levels * 4 <= k) | (levels == 1)  # (A, 1): enough samples for this many strata
            ok = (c >= 2).all(dim=2) & allowed & ~chosen if levels > 1 else ~chosen
            cc = c.clamp_min(1)
            mean = m1 / cc
            s_var = ((m2 - m1**2 / cc) / (cc - 1).clamp_min(1)).clamp_min(0)  # per-stratum sample variance
            values = torch.where(ok, (w * mean).sum(2), values)
            var = torch.where(ok, (w**2 * s_var / cc).sum(2), var)
            chosen |= ok
            levels //= 2
        stderr = torch.where(k >= 2, var.sqrt(), torch.full_like(var, math.nan))
        return values, stderr


def _restore_efficiency(values: torch.Tensor, stderr: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """Spread ``gap - sum(values)`` over the cells in proportion to their variance (the minimum-variance
    correction that makes the map sum to ``v(all) - v(empty)``); uniform where no variance is known.
    Post-stratified means miss the sum by sampling noise; plain means already obey it."""
    miss = (gap - values.sum(dim=1)).view(-1, 1)
    var = torch.nan_to_num(stderr**2, nan=0.0)
    total = var.sum(dim=1, keepdim=True)
    share = torch.where(total > 0, var / total.clamp_min(1e-300), torch.full_like(var, 1.0 / values.shape[1]))
    return values + share * miss


def _stderr(s1: torch.Tensor, s2: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Standard error of the mean from sums (N, P) and counts (N,); NaN where k < 2."""
    kf = k.to(torch.float64).view(-1, 1)
    var = ((s2 - s1**2 / kf) / (kf - 1)).clamp_min(0)
    se = (var / kf).sqrt()
    return torch.where(kf >= 2, se, torch.full_like(se, math.nan))


def _reference(vf: ValueFunction, n: int, n_players: int, m: int, seed: int) -> Estimate:
    """Per cell i: m orderings; coalitions 'before i' and 'before i plus i' (docs/method.md §3)."""
    gen = torch.Generator().manual_seed(seed)
    marg_sum = torch.zeros(n, n_players, dtype=torch.float64)
    marg_sq = torch.zeros(n, n_players, dtype=torch.float64)
    # Cells in chunks so the coalition table stays small (<= ~2M booleans) for any m.
    chunk = max(1, (1 << 21) // (2 * m * n_players))
    for c0 in range(0, n_players, chunk):
        cells = torch.arange(c0, min(c0 + chunk, n_players))
        orders = torch.stack([torch.randperm(n_players, generator=gen) for _ in range(cells.numel() * m)])
        pos = orders.argsort(dim=1).view(cells.numel(), m, n_players)
        before = pos < pos.gather(2, cells.view(-1, 1, 1).expand(-1, m, 1))  # (c, m, P)
        with_i = before.clone()
        with_i[torch.arange(cells.numel()), :, cells] = True
        coalitions = torch.stack([before, with_i], dim=2).view(-1, n_players)  # (c*m*2, P)
        v = vf.evaluate(torch.arange(n), coalitions).view(n, cells.numel(), m, 2)
        marg = v[..., 1] - v[..., 0]  # (n, c, m)
        marg_sum[:, cells] = marg.sum(dim=2)
        marg_sq[:, cells] = (marg**2).sum(dim=2)
    k = torch.full((n,), m, dtype=torch.long)
    return marg_sum / m, _stderr(marg_sum, marg_sq, k), k, None, None


def _exact(vf: ValueFunction, n: int, n_players: int) -> Estimate:
    """phi_i = sum over S not containing i of |S|! (P-|S|-1)! / P! * (v(S + i) - v(S))."""
    codes = torch.arange(2**n_players)
    bits = 1 << torch.arange(n_players)
    coalitions = (codes.view(-1, 1) & bits) != 0  # (2^P, P), coalition c has code c
    v = vf.evaluate(torch.arange(n), coalitions)  # (n, 2^P)
    size = coalitions.sum(dim=1)
    weight = torch.tensor([math.factorial(s) * math.factorial(n_players - s - 1) / math.factorial(n_players)
                           for s in range(n_players)], dtype=torch.float64)
    values = torch.zeros(n, n_players, dtype=torch.float64)
    for i in range(n_players):
        without = codes[(codes & (1 << i)) == 0]
        values[:, i] = ((v[:, without | (1 << i)] - v[:, without]) * weight[size[without]]).sum(dim=1)
    zeros = torch.zeros(n, dtype=torch.long)
    return values, torch.zeros_like(values), zeros, v[:, -1].clone(), v[:, 0].clone()
