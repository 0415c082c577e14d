"""Explain a model fstmatch did not build, in three lines (docs/explain.md, "In a notebook").

    python examples/explain_your_model.py [--out DIR]

A tiny hand-written CNN with random weights stands in for your classifier; any ``nn.Module`` or
plain function mapping (B, 3, H, W) to (B, K) outputs works the same way. Needs only torch and
numpy (matplotlib for the figure: ``pip install 'fstmatch[plot]'``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from fstmatch.explain import face_concepts, shapley


class TinyNet(nn.Module):
    """Your model: two conv layers and a linear head, two classes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.head = nn.Linear(16 * 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="write the figure here (PNG)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model, faces = TinyNet().eval(), torch.rand(2, 3, 64, 64)  # your model and (N, 3, H, W) images

    # 1. grid cells: an 8 x 8 map per image, and its pixel version
    res = shapley(model, faces, target=1, grid=8)
    print("grid map", tuple(res.values.shape), "pixels", tuple(res.to_pixels().shape),
          f"{res.total_forward:,} forwards")

    # 2. your own concepts: facial parts from 68 landmarks (here a made-up face scaled to the crop)
    landmarks = _example_landmarks(64)
    parts = shapley(model, faces, target=1, feature_mask=face_concepts(landmarks, 64), estimator="exact")
    print("facial parts", tuple(parts.values.shape), "sum", [f"{s:.4f}" for s in parts.values.sum(1).tolist()],
          "= v(all) - v(empty)", [f"{d:.4f}" for d in (parts.v_full - parts.v_empty).tolist()])

    # 3. a plain function with extra arguments: the probability of class 1 at a temperature
    def prob(x: torch.Tensor, temperature: float) -> torch.Tensor:
        return torch.softmax(model(x) / temperature, dim=1)[:, 1]

    p1 = shapley(prob, faces, grid=4, additional_forward_args=2.0, budget=16)
    print("probability map", tuple(p1.values.shape))

    if args.out is not None:
        from fstmatch.explain import plot

        args.out.parent.mkdir(parents=True, exist_ok=True)
        plot(faces[0], parts.to_pixels()[0], title="facial parts, class 1").savefig(args.out)
        print("wrote", args.out)


def _example_landmarks(size: int) -> torch.Tensor:
    """68 points (dlib order) of a frontal face drawn by hand on a 224-px crop, scaled to ``size``."""
    import math

    jaw = [(40 + 9 * i, 110 + 80 * math.sin(math.pi * i / 16)) for i in range(17)]
    brows = [(60 + 10 * i + 64 * side, 88 - 4 * math.sin(math.pi * i / 4)) for side in (0, 1) for i in range(5)]
    nose = [(112, 100 + 10 * i) for i in range(4)] + [(100 + 6 * i, 142 + 3 * (i in (1, 2, 3))) for i in range(5)]
    eyes = [(cx + dx, 105 + dy) for cx in (85, 139)
            for dx, dy in ((-12, 0), (-5, -5), (5, -5), (12, 0), (5, 4), (-5, 4))]
    mouth = [(90 + 22 * (1 - math.cos(2 * math.pi * i / 12)), 165 - 8 * math.sin(2 * math.pi * i / 12)) for i in range(12)]
    inner = [(97 + 7.5 * i, 165) for i in range(5)] + [(97 + 15 * i, 166) for i in (2, 1, 0)]
    return torch.tensor(jaw + brows + nose + eyes + mouth + inner) * size / 224


if __name__ == "__main__":
    main()
