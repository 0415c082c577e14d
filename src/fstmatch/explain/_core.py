"""Shapley values of image features: the public :func:`shapley`, the walk, ``reference`` and ``exact``.

Players are the ``G*G`` cells of a grid over the image, or the K labels of a feature mask; ``v(S)``
is the target output of the image with the players outside ``S`` replaced by the baseline
(docs/method.md §3). Estimators:

- ``spline`` (the default, ``_spline.py``) and ``kernel`` / ``leverage`` / ``unbiased``
  (``_regression.py``): regressions on sampled coalition pairs (the run classes of ``RUNS``).
- ``permutation``: permutation walk. One ordering of the players gives a marginal for every
  player by adding them one at a time. ``v(∅)`` and ``v(all)`` are the same for every ordering, so
  they are evaluated once per image: ``P`` orderings cost ``2 + P*(K - 1)`` forwards per image.
  Antithetic (default): orderings come in pairs (an ordering, then its reverse); the pair mean is one
  sample for the standard error. Every ordering's marginals sum to ``v(all) - v(∅)``, so the
  estimate obeys efficiency exactly.
- ``reference``: the paper's estimator. For each player separately, ``m`` random orderings, two
  forwards each (the players before it, then plus it): ``2*K*m`` forwards per image.
- ``exact``: all ``2**K`` coalitions with the Shapley weights (``K <= 12``).

The orderings depend only on ``seed`` (shared by all images, drawn one at a time, so a larger budget
extends a smaller one); batching only changes how coalitions are grouped into forwards.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from fstmatch.explain import _dist, _utils
from fstmatch.explain._regression import REGRESSION_METHODS, RegressionRun, pairs_for, regression
from fstmatch.explain._result import EstimatorExtras, ShapleyResult
from fstmatch.explain._spline import SplineRun
from fstmatch.explain._utils import MAX_EXACT_PLAYERS, ForwardArgs, Model, ShapleyInputError, ValueFunction

ESTIMATORS = ("spline", "permutation", *REGRESSION_METHODS, "reference", "exact")
#: The estimator ``shapley()`` and ``fstmatch explain`` use by default.
DEFAULT_ESTIMATOR = "spline"
#: Estimators that were removed, and what to use instead.
REMOVED_ESTIMATORS = {"auto": "spline"}
#: Estimators that stop on ``max_stderr``.
ADAPTIVE_ESTIMATORS = ("spline", "permutation", *REGRESSION_METHODS)
#: Default budget: orderings per image for ``permutation`` (32 antithetic pairs; docs/explain.md says
#: why), as many forwards for the regressions (orderings' worth: ``budget * (K - 1) + 2``), and
#: orderings per player for ``reference`` (the paper's m).
DEFAULT_BUDGET = {"spline": 64, "permutation": 64, "kernel": 64, "leverage": 64, "unbiased": 64, "reference": 100}
#: Orderings added per round when stopping on ``max_stderr``.
ROUND = 16
#: Fixed budgets run in rounds of at most this many (image, ordering, player) float64 numbers.
ROUND_NUMBERS = 1 << 22


class EstimatorRun(Protocol):
    """A resumable estimate for N images (``RUNS``): ``run`` adds samples for some images (the same
    samples for all of them), ``estimate`` gives (values, stderr) (A, K) at any point, ``freeze``
    keeps an image's estimate while others go on, ``count`` the samples each image has had, ``used``
    the budget spent per image (orderings' worth), ``extras`` the typed extras of the estimator."""

    def run(self, active: torch.Tensor, count: int) -> None: ...
    def estimate(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def freeze(self, images: torch.Tensor) -> None: ...
    def count(self, images: torch.Tensor) -> torch.Tensor: ...
    def used(self) -> torch.Tensor: ...
    def extras(self) -> EstimatorExtras: ...


#: the regression family's run classes (each an ``EstimatorRun`` over complementary coalition pairs)
RUNS: dict[str, type] = {"spline": SplineRun, **{m: RegressionRun for m in REGRESSION_METHODS}}


def shapley(
    forward_func: nn.Module | Model,
    inputs: torch.Tensor,
    target: torch.Tensor | Sequence[int] | int | None = None,
    grid: int | None = 16,
    budget: int | None = None,
    estimator: str = DEFAULT_ESTIMATOR,
    antithetic: bool = True,
    baselines: str | float | torch.Tensor = "zero",
    batch_size: int = 256,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    max_stderr: float | None = None,
    progress: bool = False,
    optimize: bool = True,
    distributed: bool | None = None,
    *,
    feature_mask: torch.Tensor | None = None,
    additional_forward_args=None,
    **renamed,
) -> ShapleyResult:
    """Shapley values of the players (G x G grid cells, or a feature mask's labels) of each input
    for one output of ``forward_func``.

    Args:
        forward_func: a ``torch.nn.Module`` or any callable mapping float (B, C, H, W) (then the
            ``additional_forward_args``) to (B, K) outputs, or to (B,). A module runs on its
            parameters' device; a plain function on the inputs' device. Masking acts on the input as
            given: fstmatch models take [0, 1] pixels and normalise inside, so the zero baseline means
            black pixels. A module in train mode is run in eval mode (with a warning) and restored
            afterwards; the module itself is never modified.
        inputs: (N, C, H, W) float; with a grid H and W must be multiples of ``grid``.
        target: (N,) output indices (or one int for all inputs); the value is ``out[:, target]``.
            None: the function must return one output per input ((B,) or (B, 1)).
        grid: cells per side (G; G*G players) when no ``feature_mask`` is given.
        budget: orderings per image (``permutation``, default 64, rounded up to even when
            antithetic); orderings' worth of forwards for ``spline``, ``kernel``, ``leverage``,
            ``unbiased`` (``budget * (K - 1) + 2`` forwards per image, K players); the cap when
            ``max_stderr`` is set; orderings per player for ``reference`` (the paper's m, default 100).
            Ignored by ``exact``.
        estimator: ``"spline"`` (size-spline KernelSHAP, the default), ``"permutation"``
            (post-stratified antithetic walk), ``"kernel"`` (paired KernelSHAP), ``"leverage"``
            (Leverage SHAP), ``"unbiased"`` (unbiased KernelSHAP), ``"reference"`` (the paper's) or
            ``"exact"`` (K <= 12). docs/explain.md compares them.
        antithetic: pair each ordering with its reverse (``permutation`` only).
        baselines: ``"zero"``, ``"mean"`` (per-image mean colour), ``"blur"`` (Gaussian, sigma = one
            cell; with a feature mask the side of a square of the mean feature's area), a number, or
            a tensor broadcastable to (N, C, H, W).
        batch_size: masked inputs per forward pass; bounds peak memory.
        seed: seeds the orderings / coalitions (the same for every image).
        dtype: e.g. ``torch.bfloat16``: run a copy of the model with weights (and inputs) in that
            dtype (autocast for a plain callable). Faster on CPUs with AMX, adds noise (docs).
        max_stderr: sampling estimators but ``reference``: add rounds of 16 orderings' worth until
            every player's standard error is below this (per image), or the cap is reached.
        progress: show a tqdm bar (forwards) on stderr.
        optimize: run a deep copy with BatchNorm folded into convolutions and channels_last memory
            format, the input normalisation hoisted out of the masked batches and, on CPU, the stem
            convolution summed from per-cell contributions (docs/explain.md, "Speed"; same values
            up to float rounding); False calls the model as given.
        distributed: split the images across ``torch.distributed`` ranks and gather the result on
            every rank (all ranks must pass the same images). ``None``: when a process group with
            more than one rank is initialised.
        feature_mask: integer labels (H, W), (N, H, W) (or with a channel axis of 1): the players
            are the labels 0..K-1, the same K for every image; replaces ``grid``.
        additional_forward_args: passed after the masked batch on every call (one argument or a
            tuple); a tensor with N rows is indexed by the images of the batch.

    Returns:
        :class:`ShapleyResult` with float64 CPU tensors: values (N, G, G) on a grid, (N, K) with a mask.

    Raises:
        ShapleyInputError (a ``UserError`` and a ``ValueError``): bad arguments, a grid that does not
        divide the image, a bad feature mask, targets out of range, outputs of the wrong shape,
        non-finite outputs, ``exact`` on more than 12 players.
    """
    if renamed:
        given = {"estimator": None if estimator == DEFAULT_ESTIMATOR else estimator, "budget": budget,
                 "target": target, "baselines": None if isinstance(baselines, str) and baselines == "zero" else baselines}
        new = _renamed_keywords(renamed, given)
        estimator, budget = new.get("estimator", estimator), new.get("budget", budget)
        target, baselines = new.get("target", target), new.get("baselines", baselines)
    if estimator in REMOVED_ESTIMATORS:
        raise ShapleyInputError(f"estimator {estimator!r} was removed (the default beats it on every game measured); "
                                f"use {REMOVED_ESTIMATORS[estimator]!r}")
    if estimator not in ESTIMATORS:
        raise ShapleyInputError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ShapleyInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    images = inputs
    labels = None
    if feature_mask is not None:
        cell = _utils.check_images(images, None)
        labels = _utils.check_feature_mask(feature_mask, images)
        n_players = int(labels.max()) + 1
        side = max(1, round(math.sqrt(cell[0] * cell[1] / n_players)))
        cell, grid = (side, side), None
    else:
        if grid is None:
            raise ShapleyInputError("pass grid=G or a feature_mask")
        cell = _utils.check_images(images, grid)
        n_players = grid * grid
    tg = _utils.check_targets(target, images.shape[0])
    if estimator == "exact":
        if n_players > MAX_EXACT_PLAYERS:
            what = f"grid={grid}" if grid is not None else "the feature mask's labels"
            raise ShapleyInputError(
                f"estimator='exact' enumerates 2**{n_players} = {2 ** n_players:,} coalitions for {what}; "
                f"it is limited to {MAX_EXACT_PLAYERS} players (4,096 coalitions): use 'spline'"
            )
        n_perm = 0
    else:
        n_perm = DEFAULT_BUDGET[estimator] if budget is None else budget
        if isinstance(n_perm, bool) or not isinstance(n_perm, int) or n_perm < 1:
            raise ShapleyInputError(f"budget must be a positive integer, got {budget!r}")
        if estimator == "permutation" and antithetic and n_perm % 2:
            n_perm += 1
    if not antithetic and estimator != "permutation":
        raise ShapleyInputError(f"antithetic=False applies to estimator='permutation' only, not {estimator!r}")
    if max_stderr is not None:
        if estimator not in ADAPTIVE_ESTIMATORS:
            raise ShapleyInputError(f"max_stderr applies to the estimators {ADAPTIVE_ESTIMATORS} only, not {estimator!r}")
        if not max_stderr > 0:
            raise ShapleyInputError(f"max_stderr must be > 0, got {max_stderr!r}")

    if distributed is None:
        distributed = _dist.world_size() > 1
    device, _ = _utils.model_device(forward_func, images)
    args = ForwardArgs(additional_forward_args, images.shape[0], device)
    run = dict(grid=grid, cell=cell, n_players=n_players, labels=labels, forward_args=args,
               single_output=target is None, method=estimator,
               n_perm=n_perm, antithetic=antithetic, baseline=baselines, batch_size=batch_size, seed=seed,
               dtype=dtype, max_stderr=max_stderr, progress=progress, optimize=optimize)
    if distributed and _dist.world_size() > 1:
        return _dist.sharded(_run_local, forward_func, images, tg, run)
    return _run_local(forward_func, images, tg, **run)


#: old keyword -> new keyword of shapley() (the old spelling still works, with a DeprecationWarning)
RENAMED_KEYWORDS = {"method": "estimator", "n_permutations": "budget", "targets": "target", "baseline": "baselines"}


def _renamed_keywords(renamed: dict, given: dict) -> dict:
    """The new keywords' values from ``renamed`` (old spellings); ``given``: the new keywords' values
    as passed (None or their default when not)."""
    out = {}
    for old, value in renamed.items():
        if old not in RENAMED_KEYWORDS:
            raise TypeError(f"shapley() got an unexpected keyword argument {old!r}")
        new = RENAMED_KEYWORDS[old]
        if given[new] is not None:
            raise TypeError(f"shapley(): pass {new}= only ({old}= is its old name)")
        warnings.warn(f"shapley({old}=...) is renamed {new}=...", DeprecationWarning, stacklevel=3)
        out[new] = value
    return out


def _run_local(
    model: Model, images: torch.Tensor, targets: torch.Tensor, *, grid: int | None, cell: tuple[int, int],
    n_players: int, labels: torch.Tensor | None, forward_args: ForwardArgs, single_output: bool, method: str, n_perm: int,
    antithetic: bool, baseline, batch_size: int, seed: int, dtype: torch.dtype | None, max_stderr: float | None,
    progress: bool, optimize: bool,
) -> ShapleyResult:
    device, float_dtype = _utils.model_device(model, images)
    x = images.detach().to(device=device, dtype=float_dtype)
    base = _utils.make_baseline(baseline, x, cell).detach()
    n = x.shape[0]
    total = _planned_forwards(method, n, n_players, n_perm, antithetic, max_stderr)
    bar = _progress_bar(total, progress)
    try:
        with _utils.prepared_model(model, optimize=optimize, dtype=dtype, device=device, probe=x[:1],
                                   probe_args=forward_args.rows(torch.zeros(1, dtype=torch.long)),
                                   hoist_normalize=True) as (fn, in_dtype, normalize):
            if normalize is not None:  # per pixel: normalising before masking gives the same inputs
                with torch.no_grad():
                    x, base = normalize(x), normalize(base)
            walker = (_incremental_walker(fn, x, base, targets, grid, in_dtype, batch_size)
                      if method == "permutation" and optimize and grid is not None and not forward_args else None)
            stem = None
            if walker is None and optimize:
                fn, stem = _stem_masker(fn, x, base, grid, labels, n_players, in_dtype,
                                        forward_args.rows(torch.zeros(1, dtype=torch.long)))
            vf = ValueFunction(
                fn, x, base, targets, grid, batch_size=batch_size, input_dtype=in_dtype,
                channels_last=optimize and isinstance(model, nn.Module), progress=bar.update if bar else None,
                walker=walker, labels=labels, forward_args=forward_args, single_output=single_output, stem=stem,
            )
            if method == "exact":
                est = _exact(vf, n, n_players)
            elif method == "reference":
                est = _reference(vf, n, n_players, n_perm, seed)
            elif method in RUNS:
                est = regression(vf, n, n_players, method, n_perm, seed, max_stderr, ROUND, run_class=RUNS[method])
            else:
                est = _permutation(vf, n, n_players, n_perm, antithetic, seed, max_stderr)
    finally:
        if bar is not None:
            bar.close()
    values, stderr, n_used, v_full, v_empty = est[:5]
    shape = (n, grid, grid) if grid is not None else (n, n_players)
    return ShapleyResult(
        values=values.view(shape), stderr=stderr.view(shape), n_forward=vf.n_forward,
        n_permutations=n_used, targets=targets.clone(), v_full=v_full, v_empty=v_empty, method=method,
        grid=grid, seed=seed, dtype=str(dtype or images.dtype).replace("torch.", ""),
        extras=est[5] if len(est) > 5 else EstimatorExtras(), feature_mask=labels,
        image_size=tuple(images.shape[-2:]),
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


def _stem_masker(fn, x: torch.Tensor, base: torch.Tensor, grid: int | None, labels: torch.Tensor | None,
                 n_players: int, in_dtype: torch.dtype | None, probe_args: tuple):
    """``(fn, None)``, or a copy of ``fn`` whose stem convolutions read the masked inputs' outputs from
    ``_stem.StemMasker`` (CPU, in the images' float dtype). On a GPU the batched convolution is cheap."""
    from fstmatch.explain._stem import StemMasker

    if x.device.type != "cpu" or in_dtype is not None or not isinstance(fn, nn.Module):
        return fn, None
    found = StemMasker.find(fn, probe_args, x, base.expand_as(x), _utils.flat_labels(labels, x.shape[0])[0], grid,
                            n_players)
    return found if found is not None else (fn, None)


def _planned_forwards(method: str, n: int, p: int, m: int, antithetic: bool, max_stderr: float | None) -> int:
    if method == "exact":
        return n * 2**p
    if method == "reference":
        return n * 2 * p * m
    if method in RUNS:
        return n * (2 + 2 * pairs_for(m, p))
    return n * (2 + m * (p - 1))


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="fwd", file=sys.stderr, desc="shapley", dynamic_ncols=True)


# ----------------------------------------------------------------------------------------------------
# Estimators. Each returns (values (N, P), stderr (N, P), n_used (N,), v_full, v_empty[, extras]).

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
