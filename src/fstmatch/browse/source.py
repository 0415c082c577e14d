"""What the explorer shows, read from a folder of map files (:mod:`fstmatch.explain.mapfile`)
without changing it, and without a model, a manifest or an aligned face recomputed.

- :func:`find_map_dir`: the folder holding the map files of ``DIR``: ``DIR/maps`` (a ``fstmatch
  verify`` output), ``DIR/verify/maps`` (a demo) or ``DIR`` itself (a ``fstmatch explain`` output).
- :class:`RunFiles`: every map of that folder grouped by model and compression (one
  :class:`~fstmatch.explain.mapfile.MapSet` each), and the run's ``summary.json`` when there is one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fstmatch.errors import UserError
from fstmatch.explain.mapfile import MapSet, concat, read_maps
from fstmatch.hypotheses.config import ROLES
from fstmatch.hypotheses.metrics import THRESHOLDS

#: Compressions whose maps the explorer shows, in this order.
COMPRESSIONS: tuple[str, ...] = ("raw", "c23", "c40")


def map_files(folder: Path) -> list[Path]:
    """The map files of ``folder`` (``*.npz``, not the hidden temporaries of an interrupted write)."""
    return sorted(p for p in folder.glob("*.npz") if not p.name.startswith("."))


def find_map_dir(out_dir: str | Path) -> Path:
    """The folder of ``out_dir``'s map files: ``out_dir/maps``, ``out_dir/verify/maps`` or ``out_dir``."""
    out = Path(out_dir)
    if not out.is_dir():
        raise UserError(f"{out} is not a folder (expected the output of `fstmatch verify`, `fstmatch demo` "
                        "or `fstmatch explain`)")
    for cand in (out / "maps", out / "verify" / "maps", out):
        if cand.is_dir() and map_files(cand):
            return cand
    raise UserError(f"{out} holds no maps (no *.npz in {out / 'maps'}, {out / 'verify' / 'maps'} or {out}): "
                    "point at the --out folder of `fstmatch verify`, `fstmatch demo` or `fstmatch explain`")


def summary_path(map_dir: Path) -> Path:
    """Where the run of the map folder ``map_dir`` keeps its ``summary.json`` (verify and demo: beside
    ``maps/``; an explain output has none, and this path does not exist)."""
    return map_dir.parent / "summary.json" if map_dir.name == "maps" else map_dir / "summary.json"


def _model_order(name: str) -> tuple[int, str]:
    return (ROLES.index(name) if name in ROLES else len(ROLES), name)


def _model_name(path: Path, maps: MapSet) -> str:
    name = maps.meta.get("model")
    return str(name) if name else (path.stem.rpartition("__")[0] or path.stem)


class RunFiles:
    """Every map of a verify, demo or explain output folder, by model and compression.

    Attributes:
        dir: the folder of the map files; ``summary``: its run's ``summary.json`` (``{}`` if none).
        maps: ``model -> compression -> MapSet`` (the images of a set in file order).
        models: model names with maps, roles in verify's order first.
        grid: G of every map; ``canvas``: side of every explained image (px).
        thresholds: Q's thresholds (the run's, else the reference's eight).
        ids: the order of the analysed frames (the run's, else sorted ids).
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = find_map_dir(out_dir)
        summary = summary_path(self.dir)
        self.summary: dict[str, Any] = json.loads(summary.read_text("utf-8")) if summary.is_file() else {}
        parts: dict[str, dict[str, list[MapSet]]] = {}
        for path in map_files(self.dir):
            maps = read_maps(path)  # an older format: a UserError naming its version
            if maps.meta.get("variant"):
                continue  # e.g. verify's second raw estimate (raw_repeat)
            if maps.grid is None:
                raise UserError(f"{path}: the explorer shows maps over a grid of cells, not {maps.values.shape[1:]} values")
            if maps.image is None:
                raise UserError(f"{path} holds no explained images (write it with the image: the explorer aligns nothing)")
            model = _model_name(path, maps)
            assert maps.info is not None
            by_comp: dict[str, list[int]] = {}
            for k, info in enumerate(maps.info):
                by_comp.setdefault(str(info.get("compression", "raw")), []).append(k)
            for comp, idx in by_comp.items():
                if comp in COMPRESSIONS:
                    parts.setdefault(model, {}).setdefault(comp, []).append(
                        maps if len(idx) == len(maps) else maps.subset(idx))
        self.maps: dict[str, dict[str, MapSet]] = {
            m: {c: concat(sets) if len(sets) > 1 else sets[0] for c, sets in by.items()} for m, by in parts.items()}
        if not self.maps:
            raise UserError(f"{self.dir} holds no maps at {', '.join(COMPRESSIONS)}")
        self.models = sorted(self.maps, key=_model_order)
        sets = [s for by in self.maps.values() for s in by.values()]
        grids = {s.grid for s in sets}
        sizes = {s.image.shape[1:3] for s in sets if s.image is not None}
        if len(grids) != 1 or len(sizes) != 1:
            raise UserError(f"the maps of {self.dir} mix grids {sorted(grids)} or image sizes {sorted(sizes)}: "
                            "the explorer shows one grid over one image size")
        self.grid = int(grids.pop() or 0)
        self.canvas = int(sizes.pop()[0])
        cfg = self.summary.get("config", {})
        self.thresholds = tuple(float(t) for t in cfg.get("thresholds", ())) or THRESHOLDS
        self.ids: list[str] | None = self.summary.get("images", {}).get("ids")

    def comps(self, model: str) -> list[str]:
        """Compressions at which ``model`` has maps, in raw, c23, c40 order."""
        return [c for c in COMPRESSIONS if c in self.maps.get(model, {})]
