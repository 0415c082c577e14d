"""Verify's Shapley maps on a trained run, three ways side by side: the engine's default (input
normalisation hoisted, stem convolution from per-cell contributions), the hoist alone, and neither
(normalised inside the model, every masked input through the full model: before 2026-12-07).

The engine masks thousands of inputs per face. A model's first op, :class:`ImageNormalize`, is per
pixel, so ``shapley`` normalises images and baselines once and runs a copy without it
(``fstmatch.explain._utils.hoist_input_normalize``: exact). Its first convolution is linear, so the
copy takes the stem's output of a masked input from per-cell contributions instead of convolving it
(``fstmatch.explain._stem``: equal up to float rounding). This times the three ways, rounds
interleaved, one thread, on test faces of a demo run; it checks that the hoist's maps are
bit-identical to the plain ones and prints the stem's largest difference relative to the maps' scale.

Usage::

    python benchmarks/verify_maps.py DEMO/seed-0/runs/det DEMO/prep/manifest.jsonl --images 32 --repeats 3

Prints per-way medians (seconds per call of ``--images`` maps), the ratios, and how the maps compare.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from fstmatch.data import read_manifest
from fstmatch.explain import _stem, _utils, shapley
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
    hoist, find = _utils.hoist_input_normalize, _stem.StemMasker.__dict__["find"]

    def no_hoist(module, probe, probe_args=()):
        return module, None

    no_stem = classmethod(lambda cls, *a, **k: None)
    ways = {"plain": (no_hoist, no_stem), "hoisted": (hoist, no_stem), "default": (hoist, find)}

    def maps(way: str) -> tuple[float, torch.Tensor]:
        _utils.hoist_input_normalize, _stem.StemMasker.find = ways[way]
        try:
            t0 = time.perf_counter()
            res = shapley(model, x, targets, grid=args.grid, budget=args.budget, batch_size=args.batch_size, seed=0)
            return time.perf_counter() - t0, res.values
        finally:
            _utils.hoist_input_normalize, _stem.StemMasker.find = hoist, find

    maps("default")  # warm-up
    times: dict[str, list[float]] = {w: [] for w in ways}
    values: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for way in ways:
            seconds, values[way] = maps(way)
            times[way].append(seconds)
    med = {w: statistics.median(t) for w, t in times.items()}
    scale = float(values["plain"].abs().max()) or 1.0
    stem_diff = float((values["default"] - values["plain"]).abs().max()) / scale
    print(f"{len(rows)} maps a call, {args.grid}x{args.grid}, {args.budget} orderings' worth, 1 thread, "
          f"median of {args.repeats}: plain {med['plain']:.2f} s, hoisted {med['hoisted']:.2f} s, "
          f"default (hoist + stem) {med['default']:.2f} s; ratios plain/hoisted {med['plain'] / med['hoisted']:.2f}x, "
          f"plain/default {med['plain'] / med['default']:.2f}x")
    print(f"hoisted maps bit-identical to plain: {torch.equal(values['hoisted'], values['plain'])}; "
          f"default vs plain: largest difference {stem_diff:.1e} of the maps' largest value")
    print("rounds (plain/hoisted/default):",
          [f"{a:.2f}/{b:.2f}/{c:.2f}" for a, b, c in zip(times["plain"], times["hoisted"], times["default"])])


if __name__ == "__main__":
    main()
