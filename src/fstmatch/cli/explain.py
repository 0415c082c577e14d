"""``fstmatch explain``: Shapley maps of grid cells for the faces of a manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from fstmatch.cli._common import (
    add_compressions_argument,
    add_geometry_arguments,
    add_methods_argument,
    add_model_arguments,
    add_renamed_flags,
    positive_int,
)
from fstmatch.ffpp import SPLITS

HELP = "Shapley maps (grid cells) of a trained model for the faces of a manifest"
DESCRIPTION = """\
Explain a model's logit for each face of a prepared manifest with Shapley values of the cells of a
GRID x GRID grid (docs/method.md §3; docs/explain.md). Writes DIR/<id with / replaced by __>.npz (a map
file, docs/INTERFACES.md: the map, its stderr, the explained class and face, v(full), v(empty), the
logit and score) and a PNG overlay next to it; `fstmatch browse DIR` shows them.
Resumable: images whose .npz exists are skipped (rerun the same command); a map file of the older
format is redone.

Which logit: the model's role decides (det and fstmatching: the det label; source: the source
identity; target: the target identity; any two-class model: the det label); --target-kind
overrides it. Faces are aligned as the run's config.yaml says, else in --convention.
Multi-process: torchrun --nproc_per_node N -m fstmatch explain ... (images split over ranks).

examples:
  fstmatch explain --checkpoint runs/det --data prep --split test --limit 20 --out maps/det
  fstmatch explain --checkpoint runs/src --data prep --manipulations Deepfakes --compressions raw c23 c40 \\
      --grid 16 --budget 64 --out maps/src
  fstmatch explain --checkpoint xception_best.pth --arch deepfakebench:xception --convention deepfakebench \\
      --data prep --limit 20 --out maps/xception
  fstmatch explain --checkpoint runs/det --data prep --explainer gradcam --grid 8 --out maps/det-gradcam
"""

#: fstmatch.explain.attribution.list_explainers(), spelled out so that `fstmatch --help` does not
#: import torch (tests/explain/test_cli.py checks they match)
EXPLAINERS = ("shapley", "gradcam", "gradcam++", "ig", "occlusion", "saliency")

#: fstmatch.explain.ESTIMATORS and its default, spelled out so that `fstmatch --help` does not import torch
#: (tests/explain/test_cli.py checks they match)
ESTIMATORS = ("spline", "permutation", "kernel", "leverage", "unbiased", "reference", "exact")
DEFAULT_ESTIMATOR = "spline"
#: old option -> its new name (an old spelling is an error naming the new one)
RENAMED_FLAGS = {"--method": "--estimator", "--methods": "--manipulations", "--permutations": "--budget"}
#: explain.json keys written before the renames -> their names now
_RENAMED_KEYS = {"method": "estimator", "permutations": "budget"}
#: model role (fst_meta["name"]) -> manifest key of the explained class
ROLE_TARGET = {"det": "label", "fstmatching": "label", "source": "source", "target": "target"}
KIND_KEY = {"det": "label", "source": "source", "target": "target"}
#: settings that must match when resuming into an existing DIR
_RESUME_KEYS = ("checkpoint", "arch", "explainer", "layer", "grid", "estimator", "budget", "antithetic", "baseline",
                "target_kind", "dtype", "seed", "max_stderr", "convention", "canvas", "face_width", "scale")


#: what explain.json files written before a key existed meant by its absence
_OLD_DEFAULTS = {"arch": None, "convention": "fstmatch", "face_width": None, "explainer": "shapley", "layer": None}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--data", required=True, type=Path, metavar="MANIFEST", help="manifest.jsonl (or its folder)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument("--split", choices=SPLITS, default="test", help="split to explain (default: %(default)s)")
    add_methods_argument(p, include_real=True, flag="--manipulations")
    add_compressions_argument(p)
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N faces (manifest order)")
    p.add_argument("--explainer", choices=EXPLAINERS, default="shapley",
                   help="shapley (the paper's, default) or another explainer; docs/explain.md compares them")
    p.add_argument("--layer", metavar="NAME", help="Grad-CAM's layer (a module name, e.g. layer2; default: the deepest "
                                                   "convolutional layer at least as fine as the grid)")
    p.add_argument("--grid", type=positive_int, default=16, help="cells per side (default: %(default)s)")
    p.add_argument("--budget", type=positive_int, metavar="P",
                   help="orderings' worth of forwards per image, 2 + P*(grid^2-1) (default 64), or orderings per "
                        "cell (reference; the paper's m, default 100)")
    p.add_argument("--estimator", type=_estimator, choices=ESTIMATORS, default=None,
                   help=f"Shapley estimator (default: {DEFAULT_ESTIMATOR}, or permutation with --no-antithetic; "
                        "docs/explain.md compares them)")
    p.add_argument("--no-antithetic", action="store_true", help="plain permutation walk (with --estimator permutation)")
    p.add_argument("--max-stderr", type=float, metavar="SE",
                   help="sampling estimators: stop once every cell's standard error is below SE (--budget caps)")
    add_renamed_flags(p, RENAMED_FLAGS)
    p.add_argument("--baseline", choices=("zero", "mean", "blur"), default="zero",
                   help="what replaces absent cells (default: %(default)s = black pixels)")
    p.add_argument("--target-kind", choices=("auto", "det", "source", "target"), default="auto",
                   help="which label's logit to explain (default: from the model's role)")
    p.add_argument("--bf16", action="store_true", help="bf16 weights (fast only on CPUs with AMX / on GPUs)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="masked images per forward (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the orderings (default: %(default)s)")
    add_geometry_arguments(p)
    p.add_argument("--no-overlay", action="store_true", help="skip the PNG overlays")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _estimator(name: str) -> str:
    if name == "auto":
        raise argparse.ArgumentTypeError("the estimator 'auto' was removed (spline beats it on every game measured): "
                                         "use spline (the default)")
    return name


def resolve_target_kind(requested: str, meta: dict, num_classes: int | None = None) -> str:
    """det / source / target from --target-kind or the model's role (``num_classes``: the model's
    output count when it has no role, e.g. a DeepfakeBench detector)."""
    from fstmatch.errors import UserError

    if requested != "auto":
        return requested
    role = (meta or {}).get("name")
    if role in ROLE_TARGET:
        return {"label": "det", "source": "source", "target": "target"}[ROLE_TARGET[role]]
    num_classes = ((meta or {}).get("kwargs") or {}).get("num_classes", num_classes)
    if num_classes == 2:
        return "det"
    raise UserError(f"cannot tell which label to explain for a model {role!r}: pass --target-kind det|source|target")


def out_name(row_id: str) -> str:
    return row_id.replace("/", "__")


def run(args: argparse.Namespace) -> int:
    import json

    import torch
    from tqdm import tqdm

    from fstmatch.cli._common import resolve_geometry
    from fstmatch.data import FaceDataset, filter_rows, read_manifest
    from fstmatch.errors import UserError
    from fstmatch.explain import DEFAULT_BUDGET, shapley
    from fstmatch.explain.attribution import attribute
    from fstmatch.explain.mapfile import (
        FORMAT_VERSION,
        MapSet,
        image_digest,
        map_version,
        row_info,
        to_uint8,
        write_maps,
    )
    from fstmatch.explain.plot import overlay_png
    from fstmatch.hypotheses.maps import class_scores
    from fstmatch.models import load_model
    from fstmatch.utils.dist import barrier, cleanup, init_distributed
    from fstmatch.utils.io import atomic_write_json

    if args.estimator is None:
        args.estimator = "permutation" if args.no_antithetic else DEFAULT_ESTIMATOR
    shapley_maps = args.explainer == "shapley"
    if args.layer is not None and not args.explainer.startswith("gradcam"):
        raise UserError(f"--layer applies to Grad-CAM only, not to --explainer {args.explainer}")
    if args.max_stderr is not None and args.max_stderr <= 0:
        raise UserError(f"--max-stderr must be > 0, got {args.max_stderr}")
    geometry = resolve_geometry(args, args.checkpoint)
    if geometry.side % args.grid:
        raise UserError(f"--grid {args.grid} does not divide the canvas ({geometry.side} px)")
    info = init_distributed(args.device)
    try:
        model = load_model(args.checkpoint, arch=args.arch).to(info.device).eval()
        kind = resolve_target_kind(args.target_kind, getattr(model, "fst_meta", {}), getattr(model, "num_classes", None))
        key = KIND_KEY[kind]
        model_name = (getattr(model, "fst_meta", {}) or {}).get("name") or args.arch or args.checkpoint.stem
        budget = (args.budget or DEFAULT_BUDGET.get(args.estimator)) if shapley_maps else None
        rows = read_manifest(args.data)
        root = args.data if args.data.is_dir() else args.data.parent
        rows = filter_rows(rows, split=args.split, methods=args.methods, compressions=args.compressions)
        if args.limit:
            rows = rows[: args.limit]
        settings = {"checkpoint": str(args.checkpoint.resolve()), "arch": args.arch, "explainer": args.explainer,
                    "layer": args.layer, "grid": args.grid, "estimator": args.estimator,
                    "budget": args.budget, "antithetic": not args.no_antithetic,
                    "baseline": args.baseline, "target_kind": kind, "dtype": "bfloat16" if args.bf16 else "float32",
                    "seed": args.seed, "max_stderr": args.max_stderr, **geometry.to_dict()}
        config_path = args.out / "explain.json"
        if config_path.exists():
            old = {_RENAMED_KEYS.get(k, k): v for k, v in json.loads(config_path.read_text()).items()}
            changed = [k for k in _RESUME_KEYS if old.get(k, _OLD_DEFAULTS.get(k)) != settings[k]]
            if changed:
                raise UserError(
                    f"{args.out} holds maps made with other settings ({', '.join(changed)} differ): "
                    "use another --out, or the same options to resume"
                )
        todo = [r for r in rows if map_version(args.out / f"{out_name(r['id'])}.npz") != FORMAT_VERSION]
        barrier()  # every rank listed the same files before rank 0 writes new ones
        if info.is_main:
            atomic_write_json(config_path, {**settings, "model": getattr(model, "fst_meta", {})})
            how = f"{args.estimator} Shapley values" if shapley_maps else args.explainer
            print(f"fstmatch explain: {len(rows)} faces, {len(rows) - len(todo)} already done, "
                  f"{len(todo)} to explain ({kind} logit, grid {args.grid}, {how})", flush=True)
        if not todo:
            return 0
        data = FaceDataset(todo, root, geometry=geometry)
        step = info.world_size
        bar = tqdm(total=len(todo), unit="img", disable=args.no_progress or not info.is_main, dynamic_ncols=True)
        spent = 0
        for start in range(0, len(todo), step):
            items = [data[i] for i in range(start, min(start + step, len(todo)))]
            images = torch.stack([it["image"] for it in items])
            targets = torch.stack([it[key] for it in items])
            if shapley_maps:
                res = shapley(model, images, targets, grid=args.grid, budget=args.budget,
                              estimator=args.estimator, antithetic=not args.no_antithetic, baselines=args.baseline,
                              batch_size=args.batch_size, seed=args.seed, max_stderr=args.max_stderr,
                              dtype=torch.bfloat16 if args.bf16 else None, distributed=info.world_size > 1)
                spent += res.total_forward
            else:  # every rank explains its own images; rank 0 writes them all below
                res = attribute(args.explainer, model, images.to(info.device), targets, grid=args.grid,
                                layer=args.layer)
            if info.is_main:
                logit, score = class_scores(model, images.to(info.device), targets)
                for n, it in enumerate(items):
                    stem = args.out / out_name(it["id"])
                    one = slice(n, n + 1)
                    common = dict(ids=[it["id"]], target=targets[one].numpy(), digest=[image_digest(it["image"])],
                                  image=to_uint8(it["image"][None]), info=[row_info(todo[start + n])],
                                  metrics={"logit": logit[one], "score": score[one]}, geometry=geometry.to_dict())
                    meta = {"model": model_name, "target_kind": kind, "grid": args.grid,
                            "checkpoint": str(args.checkpoint), "arch": args.arch}
                    if shapley_maps:
                        maps = MapSet(
                            values=res.values[one].numpy(), stderr=res.stderr[one].numpy(),
                            n_forward=res.n_forward[one].numpy(),
                            v_full=None if res.v_full is None else res.v_full[one].numpy(),
                            v_empty=None if res.v_empty is None else res.v_empty[one].numpy(),
                            explainer="shapley", estimator=args.estimator, budget=budget,
                            meta={**meta, "seed": args.seed, "baseline": args.baseline,
                                  "n_permutations": int(res.n_permutations[n])}, **common)
                    else:
                        maps = MapSet(values=res.cells[one].numpy(), pixels=res.pixels[one].float().numpy(),
                                      explainer=args.explainer,
                                      meta={**meta, "layer": res.layer, "signed": res.signed,
                                            "seconds": float(res.seconds[n])}, **common)
                    write_maps(stem.with_suffix(".npz"), maps)
                    if not args.no_overlay:
                        overlay_png(it["image"].numpy(), maps.values[0], stem.with_suffix(".png"),
                                    title=f"{it['id']}  ({kind} logit, class {int(targets[n])}, {args.explainer})")
            bar.update(len(items))
        bar.close()
        if info.is_main:
            cost = f" ({spent:,} forward passes)" if shapley_maps else ""
            print(f"fstmatch explain: wrote {len(todo)} maps to {args.out}{cost}", flush=True)
        return 0
    finally:
        cleanup()
