"""Where a demo training run spends its CPU: decoding + aligning a face vs a training step per face.

The seven demo runs of one seed (and every seed of a study) decode and align the same crops again
every epoch. This measures, one thread, side by side on the same machine:

- ``decode``: :func:`fstmatch.data.dataset.aligned_face` per face (PNG read, similarity warp);
- ``step``: forward + backward + AdamW step of the demo's detector per face, at the demo batch size.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/demo_costs.py DIR/prep/manifest.jsonl --canvas 48 --width 8

Prints the medians of ``--repeats`` rounds and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from fstmatch.data import Geometry, read_manifest
from fstmatch.data.dataset import aligned_face
from fstmatch.models import create_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", type=Path)
    p.add_argument("--canvas", type=int, default=48)
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--faces", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [r for r in read_manifest(args.manifest) if r["split"] == "train"][: args.faces]
    model = create_model("det", width=args.width)
    opt = torch.optim.AdamW(model.parameters())
    x = torch.rand(args.batch_size, 3, args.canvas, args.canvas)
    y = torch.randint(0, 2, (args.batch_size,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    decode, train = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for r in rows:
            aligned_face(r, args.manifest.parent, geometry=Geometry(canvas=args.canvas, scale=0.9))
        decode.append((time.perf_counter() - t0) / len(rows))
        t0 = time.perf_counter()
        for _ in range(4):
            step()
        train.append((time.perf_counter() - t0) / (4 * args.batch_size))
    d, s = statistics.median(decode), statistics.median(train)
    print(f"decode+align {d * 1e3:.2f} ms/face, training step {s * 1e3:.2f} ms/face, ratio {d / s:.2f} "
          f"({args.faces} faces, canvas {args.canvas}, width {args.width}, batch {args.batch_size}, "
          f"median of {args.repeats})")


if __name__ == "__main__":
    main()
