"""Where a ``verify`` or ``demo`` output keeps what the explorer shows, read without changing it.

- :func:`find_verify_dir`: ``DIR`` itself (a ``fstmatch verify`` output) or ``DIR/verify`` (a demo).
- :class:`RunFiles`: the run's summary, its maps per (model, compression) from ``maps/*.npz``, the
  manifest rows of the analysed frames and the checkpoint of every model, with paths recorded
  relative to the working directory of the run found again from ``DIR``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fstmatch.errors import UserError
from fstmatch.hypotheses.config import ROLES

#: Compressions whose maps the explorer shows (``raw_repeat`` is verify's second raw estimate).
COMPRESSIONS: tuple[str, ...] = ("raw", "c23", "c40")


def find_verify_dir(out_dir: str | Path) -> Path:
    """The folder holding ``maps/`` of a verify run: ``out_dir`` or its ``verify/`` (demo output)."""
    out = Path(out_dir)
    if not out.is_dir():
        raise UserError(f"{out} is not a folder (expected the output of `fstmatch verify` or `fstmatch demo`)")
    for cand in (out, out / "verify"):
        if (cand / "maps").is_dir() and any((cand / "maps").glob("*__raw.npz")):
            return cand
    raise UserError(f"{out} holds no Shapley maps (no maps/*__raw.npz here or in {out / 'verify'}): "
                    "point at the --out folder of `fstmatch verify` or `fstmatch demo`")


def locate(recorded: str | Path | None, near: Path) -> Path | None:
    """``recorded`` (a path written by the run, maybe relative to the run's working directory) as an
    existing path: as given, else relative to ``near`` or one of its parents; ``None`` if not found."""
    if not recorded:
        return None
    p = Path(recorded)
    if p.exists():
        return p
    if p.is_absolute():
        return None
    for base in (near, *near.resolve().parents):
        if (base / p).exists():
            return base / p
    return None


@dataclass
class MapSet:
    """One model's maps at one compression, by image id: values and stderr ``(G, G)`` float32."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    stderr: dict[str, np.ndarray] = field(default_factory=dict)


def read_maps(path: Path) -> MapSet:
    """A ``MapStore`` cache file (``ids``, ``values``, ``stderr``); never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as z:
            ids = [str(i) for i in z["ids"]]
            values, stderr = z["values"].astype(np.float32), z["stderr"].astype(np.float32)
    except (OSError, KeyError, ValueError) as e:
        raise UserError(f"cannot read Shapley maps {path}: {e}") from e
    return MapSet(dict(zip(ids, values)), dict(zip(ids, stderr)))


def _model_order(name: str) -> tuple[int, str]:
    return (ROLES.index(name) if name in ROLES else len(ROLES), name)


class RunFiles:
    """Everything a verify output folder says about its analysed frames."""

    def __init__(self, out_dir: str | Path, manifest: str | Path | None = None) -> None:
        self.dir = find_verify_dir(out_dir)
        summary_path = self.dir / "summary.json"
        self.summary: dict[str, Any] = json.loads(summary_path.read_text("utf-8")) if summary_path.is_file() else {}
        cfg = self.summary.get("config", {})
        self.maps: dict[str, dict[str, MapSet]] = {}
        for path in sorted(self.dir.glob("maps/*__*.npz")):
            if path.name.startswith("."):
                continue  # a temporary file of an interrupted write
            model, _, comp = path.stem.rpartition("__")
            if comp in COMPRESSIONS:
                self.maps.setdefault(model, {})[comp] = read_maps(path)
        self.models = sorted((m for m in self.maps if "raw" in self.maps[m]), key=_model_order)
        first = self.maps[self.models[0]]["raw"].values
        self.grid = int(next(iter(first.values())).shape[-1])
        self.thresholds = tuple(float(t) for t in cfg.get("thresholds", ())) or None
        from fstmatch.data.geometry import Geometry

        self.geometry = Geometry.from_dict(cfg.get("images", {}))
        self.canvas = self.geometry.side
        self.ids = list(self.summary.get("images", {}).get("ids") or sorted(first))
        recorded = manifest or self.summary.get("images", {}).get("manifest") or cfg.get("manifest")
        found = locate(recorded, self.dir)
        if found is not None and found.is_dir():
            found = found / "manifest.jsonl"
        if found is None or not found.is_file():
            raise UserError(f"the manifest of {self.dir} was not found (recorded as {recorded!r}); "
                            "pass it with --manifest PATH")
        self.manifest = found
        self.checkpoints: dict[str, Path] = {}
        for role, info in self.summary.get("models", {}).items():
            path = locate(info.get("checkpoint"), self.dir)
            if path is not None:
                self.checkpoints[role] = path

    def comps(self, model: str) -> list[str]:
        """Compressions at which ``model`` has maps, in raw, c23, c40 order."""
        return [c for c in COMPRESSIONS if c in self.maps.get(model, {})]
