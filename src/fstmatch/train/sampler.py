"""A resumable, class-balancing, distributed batch sampler.

Every epoch's order is a pure function of ``(seed, epoch)``: the same on every rank, then sharded
``rank::world_size``. Resuming at batch ``k`` of an epoch simply skips the first ``k`` batches of
that order, so an interrupted run continues exactly where it stopped. Each index comes with its
own augmentation seed (also a function of seed, epoch and position), so the augmentation of a
sample does not depend on which worker loads it or on where the run was resumed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


class EpochBatchSampler:
    """Yields lists of ``(index, item_seed)`` pairs, ``batch_size`` at a time (the last partial batch is dropped).

    ``weights`` (one per sample, optional) switch to sampling with replacement in proportion to the
    weights — used to balance real and fake frames. ``len()`` is the number of batches per epoch
    for one rank.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int = 0,
        weights: Sequence[float] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if n < batch_size * world_size:
            raise ValueError(f"{n} samples cannot fill one batch of {batch_size} on each of {world_size} process(es)")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.weights = torch.as_tensor(weights, dtype=torch.double) if weights is not None else None
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0

    def __len__(self) -> int:
        return (self.n // self.world_size) // self.batch_size

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order and skip its first ``start_batch`` batches (resume)."""
        self.epoch, self.start_batch = epoch, start_batch

    def order(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's indices and item seeds for ``epoch`` (whole epoch, before skipping)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.weights is None:
            idx = torch.randperm(self.n, generator=g)
        else:
            idx = torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        seeds = torch.randint(0, 2**31 - 1, (self.n,), generator=g)
        per_rank = self.n // self.world_size
        sl = slice(self.rank, per_rank * self.world_size, self.world_size)
        return idx[sl], seeds[sl]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        idx, seeds = self.order(self.epoch)
        b = self.batch_size
        for k in range(self.start_batch, len(self)):
            yield list(zip(idx[k * b : (k + 1) * b].tolist(), seeds[k * b : (k + 1) * b].tolist()))


def balance_weights(labels: Sequence[int]) -> list[float]:
    """Per-sample weights 1/count(label): every class is drawn equally often."""
    counts: dict[int, int] = {}
    for y in labels:
        counts[y] = counts.get(y, 0) + 1
    return [1.0 / counts[y] for y in labels]


def class_weights(labels: Sequence[int], num_classes: int = 2) -> torch.Tensor:
    """Cross-entropy class weights ``n / (K * count)`` (absent classes get weight 0)."""
    counts = torch.bincount(torch.as_tensor(list(labels), dtype=torch.long), minlength=num_classes).double()
    w = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return w.float()
