"""Sharding across two gloo ranks (CPU) gives the single-process maps on every rank."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fstmatch.explain import shapley
from fstmatch.explain._dist import shard_bounds

from .toys import CellGame


def _inputs() -> tuple[CellGame, torch.Tensor, list[int]]:
    images = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    return CellGame(3, n_classes=2, seed=1), images, [0, 1, 1]


def _masked(game: CellGame, images: torch.Tensor, targets: list[int]):
    """Per-image feature masks (4 labels) and a per-image forward argument: sharding slices both."""
    masks = torch.stack([(torch.arange(144).view(12, 12) + k) % 4 for k in range(3)])
    scale = torch.tensor([1.0, -2.0, 0.5])
    return shapley(lambda x, s: game(x) * s.view(-1, 1), images, targets, feature_mask=masks,
                   additional_forward_args=scale, estimator="exact")


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        game, images, targets = _inputs()
        res = shapley(game, images, targets, grid=3, budget=8)  # distributed=None: auto
        torch.save({"values": res.values, "stderr": res.stderr, "n_forward": res.n_forward,
                    "v_full": res.v_full, "world": res.extras.world_size, "spline_lambda": res.extras.spline_lambda,
                    "masked": _masked(game, images, targets).values},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_shard_bounds_cover_every_image_once() -> None:
    for n in (1, 2, 3, 7):
        for world in (1, 2, 3, 4):
            covered = [i for r in range(world) for i in range(*shard_bounds(n, r, world))]
            assert covered == list(range(n))


def test_two_gloo_ranks_match_a_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    game, images, targets = _inputs()
    single = shapley(game, images, targets, grid=3, budget=8)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["world"] == 2
        torch.testing.assert_close(got["values"], single.values, atol=1e-6, rtol=0)
        torch.testing.assert_close(got["stderr"], single.stderr, atol=1e-6, rtol=0)
        torch.testing.assert_close(got["v_full"], single.v_full, atol=1e-6, rtol=0)
        assert torch.equal(got["n_forward"], single.n_forward)
        assert torch.equal(got["spline_lambda"], single.extras.spline_lambda)  # the default, spline: its penalty choices too
        torch.testing.assert_close(got["masked"], _masked(game, images, targets).values, atol=1e-6, rtol=0)
