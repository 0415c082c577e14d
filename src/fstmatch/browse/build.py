"""``write_explorer(out_dir)``: the static map explorer of a verify, demo or explain output, ``DIR/explorer/``.

The page works from ``file://`` with no server, so nothing is fetched: data are JavaScript files
loaded by ``<script>`` tags and images are relative paths::

    explorer/index.html, explorer.js, explorer.css   the page (package data, copied)
    explorer/data/index.js      every frame's metadata and numbers (gallery, filters, sorting)
    explorer/data/f/<k>.js      frame k's maps (values, stderr per model and compression, float32
                                base64) and ground-truth cell fractions, loaded when the frame opens
    explorer/img/<k>_<comp>.jpg the explained face (the image the map was computed on, from the map
                                file), and _t.jpg thumbnails; <k>_donor.png / <k>_trace.png overlays

Everything comes from the map files (:mod:`fstmatch.explain.mapfile`) and the run's
``summary.json``: the explained images, the maps, and the per-image numbers the run computed (Q
per threshold, paired − unpaired Q from the detectors' Q, δ, cosines to raw, ground-truth lift, each
model's score and logit). No model is loaded and no face is aligned. Frames are matched across
compressions by (method, video, frame) of each image's manifest keys. File names are frame
numbers; names from the maps only reach the page as data (set with ``textContent``).
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fstmatch.browse.source import COMPRESSIONS, RunFiles, find_map_dir, map_files, summary_path
from fstmatch.explain.mapfile import MapSet
from fstmatch.hypotheses.truth import REGIONS, ROLE_REGION, region_fractions

ASSETS: tuple[str, ...] = ("index.html", "explorer.js", "explorer.css")
#: Colours (RGB) and peak opacity of the ground-truth overlays.
MASK_STYLE: dict[str, tuple[tuple[int, int, int], int]] = {"donor": ((255, 255, 255), 90), "trace": ((255, 215, 0), 90)}
#: Manifest keys of a frame shown in the page.
FRAME_KEYS: tuple[str, ...] = ("method", "video", "frame", "split", "label", "source", "target")

Key = tuple[str, str, str]


def _num(x: Any, digits: int = 6) -> float | None:
    """A JSON-safe float rounded to ``digits`` significant digits; ``None`` for NaN/inf/None."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype="<f4").tobytes()).decode("ascii")


def _js(name: str, obj: Any) -> str:
    """``obj`` as a JavaScript statement; ASCII-only JSON is valid JavaScript (no U+2028 issues)."""
    return f"{name}({json.dumps(obj, ensure_ascii=True, separators=(',', ':'), allow_nan=False)});\n"


def _frame_key(info: dict[str, Any], image_id: str) -> Key:
    """(method, video, frame) of an image, the same for its raw/c23/c40 versions; its id when unknown."""
    if all(k in info for k in ("method", "video", "frame")):
        return (str(info["method"]), str(info["video"]), str(info["frame"]))
    return ("", image_id, "")


class _Frames:
    """The frames of a map folder: per frame its versions (compression -> (model -> position in
    that model's MapSet)), in the run's order."""

    def __init__(self, files: RunFiles) -> None:
        self.files = files
        where: dict[Key, dict[str, dict[str, int]]] = {}
        for m in files.models:
            for c, maps in files.maps[m].items():
                assert maps.info is not None
                for k, (i, info) in enumerate(zip(maps.ids, maps.info)):
                    where.setdefault(_frame_key(info, i), {}).setdefault(c, {})[m] = k
        base_id = {}
        for key, versions in where.items():
            comp = self.base(versions)
            model, pos = next(iter(versions[comp].items()))
            base_id[key] = files.maps[model][comp].ids[pos]
        order = {i: n for n, i in enumerate(files.ids or [])}
        self.keys = sorted(where, key=lambda key: (order.get(base_id[key], len(order)), key))
        self.where = [where[key] for key in self.keys]
        self.missing = [i for i in (files.ids or []) if i not in set(base_id.values())]

    @staticmethod
    def base(versions: dict[str, dict[str, int]]) -> str:
        """The frame's main version: raw when mapped, else its first compression."""
        return "raw" if "raw" in versions else next(c for c in COMPRESSIONS if c in versions)

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, k: int, model: str, comp: str) -> tuple[MapSet, int] | None:
        """The MapSet of ``model`` at ``comp`` and the position of frame ``k`` in it, if mapped."""
        pos = self.where[k].get(comp, {}).get(model)
        return None if pos is None else (self.files.maps[model][comp], pos)

    def first(self, k: int, comp: str) -> tuple[MapSet, int]:
        """Any model's MapSet holding frame ``k`` at ``comp`` (the image is the same for every model)."""
        model, pos = next(iter(self.where[k][comp].items()))
        return self.files.maps[model][comp], pos


def _metric(fr: _Frames, k: int, model: str, comp: str, name: str) -> np.ndarray | None:
    got = fr.get(k, model, comp)
    if got is None or name not in got[0].metrics:
        return None
    return got[0].metrics[name][got[1]]


def _finite(x: np.ndarray | None) -> bool:
    return x is not None and bool(np.isfinite(x).all())


def _write_image(path: Path, rgb: np.ndarray, quality: int = 90) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"cannot encode {path}")
    path.write_bytes(buf.tobytes())


def _write_overlay(path: Path, mask: np.ndarray, region: str) -> None:
    """A mask ``(H, W)`` in [0, 1] as a transparent PNG in the region's colour."""
    (r, g, b), alpha = MASK_STYLE[region]
    h, w = mask.shape
    bgra = np.zeros((h, w, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2] = b, g, r
    bgra[..., 3] = np.clip(mask * alpha, 0, 255).round().astype(np.uint8)
    cv2.imwrite(str(path), bgra)


def _write_faces(fr: _Frames, dest: Path) -> dict[int, dict[str, np.ndarray]]:
    """Write every version's face, the thumbnails and the mask overlays; return the ground-truth cell
    fractions of the frames with masks (``k -> region -> (G, G)``)."""
    img = dest / "img"
    img.mkdir(parents=True, exist_ok=True)
    fractions: dict[int, dict[str, np.ndarray]] = {}
    for k in range(len(fr)):
        versions = fr.where[k]
        for comp in versions:
            maps, pos = fr.first(k, comp)
            assert maps.image is not None
            _write_image(img / f"{k}_{comp}.jpg", maps.image[pos])
        thumb, pos = fr.first(k, fr.base(versions))
        assert thumb.image is not None
        _write_image(img / f"{k}_t.jpg", cv2.resize(thumb.image[pos], (72, 72), interpolation=cv2.INTER_AREA), 85)
        with_masks = [(m, p) for m, p in ((fr.files.maps[m][c], p) for c in versions for m, p in versions[c].items())
                      if m.masks is not None]
        if with_masks:
            maps, pos = with_masks[0]
            assert maps.masks is not None
            masks = maps.masks[pos].astype(np.float64) / 255.0
            pooled = region_fractions(masks[None], fr.files.grid)
            fractions[k] = {r: f[0] for r, f in pooled.items()}
            for c, region in enumerate(("donor", "trace")):
                _write_overlay(img / f"{k}_{region}.png", masks[c], region)
    return fractions


def _frame_record(fr: _Frames, k: int, truth: bool) -> dict[str, Any]:
    versions = fr.where[k]
    base, pos = fr.first(k, fr.base(versions))
    assert base.info is not None
    info = base.info[pos]
    rec: dict[str, Any] = {"id": base.ids[pos], **{key: info.get(key) for key in FRAME_KEYS}, "truth": truth}
    rec["frame"] = None if rec["frame"] is None else int(rec["frame"])
    paired, unpaired = (_metric(fr, k, m, "raw", "qt") for m in ("det_paired", "det_unpaired"))
    rec["h2"] = _num(paired.mean() - unpaired.mean()) if _finite(paired) and _finite(unpaired) else None
    rec["delta"] = {m: _num(d) for m in fr.files.models if (d := _metric(fr, k, m, "raw", "delta")) is not None}
    rec["v"] = {}
    for comp in COMPRESSIONS:
        models = [m for m in fr.files.models if (got := fr.get(k, m, comp)) and np.isfinite(got[0].values[got[1]]).all()]
        if not models:
            continue
        maps, pos = fr.first(k, comp)
        qt = _metric(fr, k, "det", comp, "qt")
        score = {}
        for m in models:
            s, lg = _metric(fr, k, m, comp, "score"), _metric(fr, k, m, comp, "logit")
            if _finite(s) and _finite(lg):
                score[m] = [_num(s), _num(lg)]
        rec["v"][comp] = {
            "id": maps.ids[pos], "models": models,
            "q": _num(qt.mean()) if _finite(qt) else None,
            "qt": [_num(v) for v in qt] if _finite(qt) else None,
            "cos": {m: _num(c) for m in models if (c := _metric(fr, k, m, comp, "cos")) is not None},
            "lift": {m: _num(x) for m in models if (x := _metric(fr, k, m, comp, "lift")) is not None},
            "score": score,
        }
    return rec


def _frame_data(fr: _Frames, k: int, fractions: dict[str, np.ndarray] | None) -> dict[str, Any]:
    maps: dict[str, dict[str, list[str]]] = {}
    for m in fr.files.models:
        for comp in fr.files.comps(m):
            got = fr.get(k, m, comp)
            if got is None or not np.isfinite(got[0].values[got[1]]).all():
                continue
            s, pos = got
            stderr = s.stderr[pos] if s.stderr is not None else np.full(s.values.shape[1:], np.nan)
            maps.setdefault(m, {})[comp] = [_b64(s.values[pos]), _b64(stderr)]
    data: dict[str, Any] = {"maps": maps, "fractions": None}
    if fractions is not None:
        data["fractions"] = {r: _b64(fractions[r]) for r in REGIONS}
    return data


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` by the finished ``tmp`` folder (the old copy is removed only afterwards)."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def explorer_is_current(out_dir: str | Path) -> bool:
    """Whether ``out_dir/explorer/index.html`` exists and is newer than the run's maps and summary."""
    page = Path(out_dir) / "explorer" / "index.html"
    if not page.is_file():
        return False
    folder = find_map_dir(out_dir)
    inputs = [*map_files(folder), summary_path(folder)]
    newest = max((p.stat().st_mtime for p in inputs if p.is_file()), default=0.0)
    return page.stat().st_mtime >= newest


def write_explorer(out_dir: str | Path, *, progress: bool = True) -> Path:
    """Write ``out_dir/explorer/`` for a verify output (maps in ``out_dir/maps``), a demo output (in
    ``out_dir/verify/maps``) or an explain output (map files in ``out_dir``) and return the path of
    its ``index.html``. Reads the map files and ``summary.json`` only: no model, no manifest.

    The folder is built beside the old one and swapped in when complete, so an interrupted build
    leaves the previous copy intact. A folder without maps raises :class:`UserError`.
    """
    files = RunFiles(out_dir)
    fr = _Frames(files)
    final = Path(out_dir) / "explorer"
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data" / "f").mkdir(parents=True)
    try:
        fractions = _write_faces(fr, tmp)
        records = [_frame_record(fr, k, k in fractions) for k in range(len(fr))]
        for k in range(len(fr)):
            (tmp / "data" / "f" / f"{k}.js").write_text(_js("FSTX.frame", [k, _frame_data(fr, k, fractions.get(k))]))
        scores = sorted({m for r in records for v in r["v"].values() for m in v["score"]})
        index = {
            "title": str(Path(out_dir).resolve().name), "grid": files.grid, "canvas": files.canvas,
            "thresholds": list(files.thresholds), "models": files.models, "compressions": list(COMPRESSIONS),
            "regions": {m: ROLE_REGION.get(m) for m in files.models}, "missing": fr.missing,
            "scores": scores, "frames": records,
        }
        (tmp / "data" / "index.js").write_text(_js("FSTX.index", index))
        assets = resources.files("fstmatch.browse") / "assets"
        for name in ASSETS:
            (tmp / name).write_bytes((assets / name).read_bytes())
        _swap_in(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        print(f"explorer: {len(fr)} frames, {len(files.models)} models -> {final / 'index.html'}", flush=True)
    return final / "index.html"
