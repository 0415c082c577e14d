"""Sharding :func:`fstmatch.explain.shapley` over ``torch.distributed`` ranks (torchrun).

Every rank passes the same images; rank r explains the r-th contiguous block of ceil(N / world)
images, and the maps are all-gathered so every rank returns the full result (only rank 0 should
write it). The orderings depend only on the seed, so a sharded run gives the maps of a single
process (up to float rounding of different batch compositions). Backend: whatever the process group
uses (gloo on CPU, NCCL on GPU: the exchange then goes through the current CUDA device).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.distributed as dist

from fstmatch.explain._regression import pairs_for
from fstmatch.explain._result import EstimatorExtras, ShapleyResult
from fstmatch.explain._spline import knots_for


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """[lo, hi) image range of ``rank``: contiguous blocks of ceil(n / world) (the last may be short or empty)."""
    per = math.ceil(n / world)
    return min(rank * per, n), min((rank + 1) * per, n)


def sharded(run_local: Callable, model, images: torch.Tensor, targets: torch.Tensor, run: dict):
    world, rank = dist.get_world_size(), dist.get_rank()
    n, p = images.shape[0], run["n_players"]
    per = math.ceil(n / world)
    lo, hi = shard_bounds(n, rank, world)
    packed = torch.full((per, 2 * p + 5), math.nan, dtype=torch.float64)
    if hi > lo:
        labels = run["labels"][lo:hi] if run["labels"] is not None else None
        local = run_local(model, images[lo:hi], targets[lo:hi],
                          **{**run, "labels": labels, "forward_args": run["forward_args"].slice(lo, hi),
                             "progress": run["progress"] and rank == 0})
        m = hi - lo
        packed[:m, :p] = local.values.reshape(m, p)
        packed[:m, p:2 * p] = local.stderr.reshape(m, p)
        packed[:m, 2 * p] = local.n_forward.double()
        packed[:m, 2 * p + 1] = local.n_permutations.double()
        packed[:m, 2 * p + 2] = local.v_full if local.v_full is not None else math.nan
        packed[:m, 2 * p + 3] = local.v_empty if local.v_empty is not None else math.nan
        if local.extras.spline_lambda is not None:
            packed[:m, 2 * p + 4] = local.extras.spline_lambda
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    parts = [torch.empty_like(packed, device=device) for _ in range(world)]
    dist.all_gather(parts, packed.to(device))
    full = torch.cat([t.cpu() for t in parts])[:n]
    g = run["grid"]
    shape = (n, g, g) if g is not None else (n, p)
    has_ends = run["method"] != "reference"
    dtype = run["dtype"]
    extras = EstimatorExtras(world_size=world)
    if run["method"] == "spline":
        extras.spline_lambda = full[:, 2 * p + 4].clone()
        extras.spline_knots = knots_for(p, pairs_for(run["n_perm"], p))
    return ShapleyResult(
        values=full[:, :p].reshape(shape).clone(),
        stderr=full[:, p:2 * p].reshape(shape).clone(),
        n_forward=full[:, 2 * p].round().long(),
        n_permutations=full[:, 2 * p + 1].round().long(),
        targets=targets.clone(),
        v_full=full[:, 2 * p + 2].clone() if has_ends else None,
        v_empty=full[:, 2 * p + 3].clone() if has_ends else None,
        method=run["method"], grid=g, seed=run["seed"],
        dtype=str(dtype or images.dtype).replace("torch.", ""),
        extras=extras, feature_mask=run["labels"], image_size=tuple(images.shape[-2:]),
    )
