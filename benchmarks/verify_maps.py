"""Verify's Shapley maps on a trained run: the input normalisation hoisted out of the masked batches
(the engine's default) vs normalised inside the model on every batch (before 2026-12-07).

The engine masks thousands of inputs per face; a model's first op, :class:`ImageNormalize`, is per
pixel, so ``shapley`` normalises images and baselines once and runs a copy without it
(``fstmatch.explain._utils.hoist_input_normalize``). This times both ways side by side, rounds
interleaved, one thread, on test faces of a demo run, and checks that their maps are bit-identical.

Usage::

    python benchmarks/verify_maps.py DEMO/seed-0/runs/det DEMO/prep/manifest.jsonl --images 32 --repeats 3

Prints per-way medians (seconds per call of ``--images`` maps), the ratio, and whether the maps match.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from fstmatch.data import read_manifest
from fstmatch.explain import _utils, shapley
from fstmatch.hypotheses.maps import load_images, target_key
from fstmatch.models import load_model
from fstmatch.train import load_run_config


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a training run directory (model.safetensors, config.yaml)")
    p.add_argument("manifest", type=Path, help="the manifest it was trained on")
    p.add_argument("--images", type=int, default=32, help="maps per call (verify computes 32 a call)")
    p.add_argument("--grid", type=int, default=8)
    p.add_argument("--budget", type=int, default=32, help="orderings' worth per map (the laptop preset's)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--split", default="test", help="the faces' split")
    p.add_argument("--compression", default="raw", help="the faces' compression")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    model, cfg = load_model(args.run).eval(), load_run_config(args.run)
    rows = [r for r in read_manifest(args.manifest) if r["split"] == args.split and r["compression"] == args.compression]
    if not rows:
        raise SystemExit(f"no {args.split} rows at {args.compression} in {args.manifest}")
    rows = rows[:: max(1, len(rows) // args.images)][: args.images]
    x, _ = load_images(rows, args.manifest.parent, cfg.input.geometry())
    key = target_key(cfg.model.role)  # the class verify explains: the label, or the identity
    targets = torch.tensor([int(r[key]) for r in rows])
    hoist = _utils.hoist_input_normalize

    def maps(hoisted: bool) -> tuple[float, torch.Tensor]:
        _utils.hoist_input_normalize = hoist if hoisted else (lambda module, probe, probe_args=(): (module, None))
        try:
            t0 = time.perf_counter()
            res = shapley(model, x, targets, grid=args.grid, budget=args.budget, batch_size=args.batch_size, seed=0)
            return time.perf_counter() - t0, res.values
        finally:
            _utils.hoist_input_normalize = hoist

    maps(True)  # warm-up
    times: dict[bool, list[float]] = {True: [], False: []}
    values: dict[bool, torch.Tensor] = {}
    for _ in range(args.repeats):
        for hoisted in (False, True):
            seconds, values[hoisted] = maps(hoisted)
            times[hoisted].append(seconds)
    inside, hoisted_ = statistics.median(times[False]), statistics.median(times[True])
    print(f"{len(rows)} maps a call, {args.grid}x{args.grid}, {args.budget} orderings' worth, 1 thread, "
          f"median of {args.repeats}: normalised in every batch {inside:.2f} s, hoisted {hoisted_:.2f} s, "
          f"ratio {inside / hoisted_:.2f}x; maps bit-identical: {torch.equal(values[True], values[False])}")
    print("rounds (inside, hoisted):", [f"{a:.2f}/{b:.2f}" for a, b in zip(times[False], times[True])])


if __name__ == "__main__":
    main()
