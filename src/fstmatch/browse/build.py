"""``write_explorer(out_dir)``: the static map explorer of a verify or demo output, ``DIR/explorer/``.

The page works from ``file://`` with no server, so nothing is fetched: data are JavaScript files
loaded by ``<script>`` tags and images are relative paths::

    explorer/index.html, explorer.js, explorer.css   the page (package data, copied)
    explorer/data/index.js      every frame's metadata and numbers (gallery, filters, sorting)
    explorer/data/f/<k>.js      frame k's maps (values, stderr per model and compression, float32
                                base64) and ground-truth cell fractions, loaded when the frame opens
    explorer/img/<k>_<comp>.jpg aligned face (the geometry the maps were computed on), and _t.jpg
                                thumbnails; <k>_donor.png / <k>_trace.png ground-truth overlays

Per-frame numbers are recomputed from what the run wrote (``maps/*.npz``, the manifest, the
checkpoints) with :mod:`fstmatch.hypotheses`: Q per image (H1, at every threshold), paired −
unpaired Q (H2), δ and the raw·c23 / raw·c40 cosines (H3), the ground-truth lift of each map, and
each model's score (softmax probability of the class its map explains) and logit. File names are
frame numbers; names from the manifest only reach the page as data (set with ``textContent``).
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fstmatch.browse.source import COMPRESSIONS, RunFiles
from fstmatch.errors import UserError
from fstmatch.hypotheses.maps import counterparts, target_key
from fstmatch.hypotheses.metrics import THRESHOLDS, q_per_image, stability_per_image, unit_normalise
from fstmatch.hypotheses.truth import REGIONS, ROLE_REGION, region_fractions, truth_shares

ASSETS: tuple[str, ...] = ("index.html", "explorer.js", "explorer.css")
#: Frames loaded, aligned and written per step (bounds memory on large runs).
CHUNK = 32
#: Colours (RGB) and peak opacity of the ground-truth overlays.
MASK_STYLE: dict[str, tuple[tuple[int, int, int], int]] = {"donor": ((255, 255, 255), 90), "trace": ((255, 215, 0), 90)}


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


def _stack(maps: dict[str, np.ndarray], ids: Sequence[str | None], grid: int) -> np.ndarray:
    """``(N, G, G)`` float64 of the maps of ``ids``; NaN rows where an id has no map."""
    out = np.full((len(ids), grid, grid), np.nan)
    for k, i in enumerate(ids):
        if i is not None and i in maps:
            out[k] = maps[i]
    return out


def _rows_valid(*arrays: np.ndarray) -> np.ndarray:
    return np.all([np.isfinite(a).all(axis=(1, 2)) for a in arrays], axis=0)


class _Frames:
    """The analysed frames with their c23/c40 rows and every map as ``(N, G, G)`` stacks."""

    def __init__(self, files: RunFiles) -> None:
        from fstmatch.data import read_manifest

        self.files = files
        rows = read_manifest(files.manifest)
        by_id = {r["id"]: r for r in rows}
        raw_ids = set().union(*(files.maps[m]["raw"].values for m in files.models))
        self.rows = [by_id[i] for i in files.ids if i in by_id and i in raw_ids]
        self.missing = [i for i in files.ids if i not in by_id or i not in raw_ids]
        triples, _ = counterparts(rows, self.rows)
        other = {a["id"]: (b, c) for a, b, c in triples}
        self.version_rows: dict[str, list[dict | None]] = {"raw": list(self.rows)}
        for col, comp in enumerate(("c23", "c40")):
            self.version_rows[comp] = [other[r["id"]][col] if r["id"] in other else None for r in self.rows]
        g = files.grid
        self.values: dict[str, dict[str, np.ndarray]] = {}
        self.stderr: dict[str, dict[str, np.ndarray]] = {}
        for m in files.models:
            self.values[m], self.stderr[m] = {}, {}
            for c in files.comps(m):
                ids = [None if r is None else r["id"] for r in self.version_rows[c]]
                self.values[m][c] = _stack(files.maps[m][c].values, ids, g)
                self.stderr[m][c] = _stack(files.maps[m][c].stderr, ids, g)

    def has(self, model: str, comp: str = "raw") -> bool:
        return comp in self.values.get(model, {})


def _per_image_q(fr: _Frames, det: str, comp: str, ts: Sequence[float]) -> np.ndarray:
    """``(N, T)`` Q_t of ``det`` against the source/target union at ``comp``; NaN where a map is missing."""
    n = len(fr.rows)
    out = np.full((n, len(ts)), np.nan)
    if not all(fr.has(m, comp) for m in ("source", "target", det)):
        return out
    s, t, d = fr.values["source"][comp], fr.values["target"][comp], fr.values[det][comp]
    ok = _rows_valid(s, t, d)
    if ok.any():
        out[ok] = q_per_image(s[ok], t[ok], d[ok], ts)
    return out


def _metrics(fr: _Frames, fractions: dict[str, np.ndarray] | None, ts: Sequence[float]) -> dict[str, Any]:
    """Per-frame numbers: Q_t and Q per compression, H2 difference, δ and cosines, lift per map."""
    out: dict[str, Any] = {"qt": {}, "h2": None, "delta": {}, "cos": {}, "lift": {}}
    for comp in COMPRESSIONS:
        out["qt"][comp] = _per_image_q(fr, "det", comp, ts)
    if fr.has("det_paired") and fr.has("det_unpaired"):
        out["h2"] = (_per_image_q(fr, "det_paired", "raw", ts).mean(axis=1)
                     - _per_image_q(fr, "det_unpaired", "raw", ts).mean(axis=1))
    n = len(fr.rows)
    for m in fr.files.models:
        raw = fr.values[m]["raw"]
        out["cos"][m] = {}
        for comp in ("c23", "c40"):
            if fr.has(m, comp):
                other = fr.values[m][comp]
                cos = np.full(n, np.nan)
                ok = _rows_valid(raw, other)
                cos[ok] = (unit_normalise(raw[ok]) * unit_normalise(other[ok])).sum(axis=(1, 2))
                out["cos"][m][comp] = cos
        if fr.has(m, "c23") and fr.has(m, "c40"):
            delta = np.full(n, np.nan)
            a, b, c = raw, fr.values[m]["c23"], fr.values[m]["c40"]
            ok = _rows_valid(a, b, c)
            delta[ok] = stability_per_image(a[ok], b[ok], c[ok])
            out["delta"][m] = delta
        region = ROLE_REGION.get(m, "trace" if m.startswith("det") else None)
        if fractions is not None and region is not None:
            out["lift"][m] = {}
            for comp, maps in fr.values[m].items():
                lift = np.full(n, np.nan)
                ok = _rows_valid(maps)
                share, expected, _ = truth_shares(np.nan_to_num(maps), fractions[region])
                lift[ok] = (share / expected)[ok]
                out["lift"][m][comp] = lift
    return out


def _forward(model: Any, images: Any, classes: Sequence[int], device: Any) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probability and logit of ``classes[i]`` for every image (batches of 64)."""
    import torch

    scores, logits = [], []
    with torch.no_grad():
        for start in range(0, len(images), 64):
            out = model(images[start : start + 64].to(device)).float().cpu()
            idx = torch.tensor(classes[start : start + 64]).view(-1, 1)
            logits.append(out.gather(1, idx).squeeze(1))
            scores.append(out.softmax(dim=1).gather(1, idx).squeeze(1))
    return torch.cat(scores).numpy(), torch.cat(logits).numpy()


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


def _faces_and_scores(fr: _Frames, dest: Path, scores: bool, device_name: str, progress: bool
                      ) -> tuple[dict[str, np.ndarray] | None, dict[str, dict[str, np.ndarray]]]:
    """Write every version's aligned face, thumbnail and mask overlays; return the ground-truth
    cell fractions per region ``(N, G, G)`` (``None`` without ground truth) and, per model and
    compression, ``(N, 2)`` score/logit (NaN where not computed)."""
    import torch
    from tqdm import tqdm

    from fstmatch.hypotheses.maps import load_images
    from fstmatch.models import load_model

    files, n = fr.files, len(fr.rows)
    cfg = files.geometry
    device = torch.device("cuda" if device_name == "auto" and torch.cuda.is_available() else
                          ("cpu" if device_name == "auto" else device_name))
    models: dict[str, Any] = {}
    for m in files.models if scores else ():
        try:
            if m not in files.checkpoints:
                raise UserError("checkpoint not found")
            models[m] = load_model(files.checkpoints[m]).to(device).eval()
        except (UserError, OSError) as e:  # the page still works, without this model's scores
            print(f"explorer: no scores for {m} ({e})", file=sys.stderr, flush=True)
    out = {m: {c: np.full((n, 2), np.nan) for c in files.comps(m)} for m in models}
    with_masks = all(r.get("mask_path") for r in fr.rows)
    fractions = {r: np.zeros((n, files.grid, files.grid)) for r in REGIONS} if with_masks else None
    img = dest / "img"
    img.mkdir(parents=True, exist_ok=True)
    chunks = range(0, n, CHUNK)
    for start in tqdm(chunks, desc="explorer faces", unit="chunk", disable=not progress):
        part = list(range(start, min(start + CHUNK, n)))
        raw_rows = [fr.rows[k] for k in part]
        for comp in COMPRESSIONS:
            keep = [j for j, k in enumerate(part) if fr.version_rows[comp][k] is not None]
            if not keep:
                continue
            rows = [fr.version_rows[comp][part[j]] for j in keep]
            ref = None if comp == "raw" else [raw_rows[j] for j in keep]
            x, mk = load_images(rows, files.manifest.parent, cfg, landmarks_from=ref,
                                with_masks=with_masks and comp == "raw")
            pixels = (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
            for j, face in zip(keep, pixels):
                k = part[j]
                _write_image(img / f"{k}_{comp}.jpg", face)
                if comp == "raw":
                    _write_image(img / f"{k}_t.jpg", cv2.resize(face, (72, 72), interpolation=cv2.INTER_AREA), 85)
            if mk is not None and fractions is not None:
                m_np = mk.numpy()
                for region, f in region_fractions(m_np, files.grid).items():
                    fractions[region][part] = f
                for j, k in enumerate(part):
                    for c, region in enumerate(("donor", "trace")):
                        _write_overlay(img / f"{k}_{region}.png", m_np[j, c], region)
            for m, model in models.items():
                if comp in out[m]:
                    classes = [int(raw_rows[j][target_key(m)]) for j in keep]
                    s, lg = _forward(model, x, classes, device)
                    out[m][comp][[part[j] for j in keep]] = np.stack([s, lg], axis=1)
    return fractions, out


def _frame_record(fr: _Frames, k: int, metrics: dict[str, Any], scores: dict[str, dict[str, np.ndarray]],
                  truth: bool) -> dict[str, Any]:
    row = fr.rows[k]
    rec: dict[str, Any] = {
        "id": row["id"], "method": row["method"], "video": row["video"], "frame": int(row["frame"]),
        "split": row.get("split"), "label": row.get("label"), "source": row.get("source"),
        "target": row.get("target"), "truth": truth,
        "h2": None if metrics["h2"] is None else _num(metrics["h2"][k]),
        "delta": {m: _num(v[k]) for m, v in metrics["delta"].items()},
        "v": {},
    }
    for comp in COMPRESSIONS:
        vrow = fr.version_rows[comp][k]
        models = [m for m in fr.files.models if fr.has(m, comp) and np.isfinite(fr.values[m][comp][k]).all()]
        if vrow is None or not models:
            continue
        qt = metrics["qt"][comp][k]
        rec["v"][comp] = {
            "id": vrow["id"], "models": models,
            "q": _num(qt.mean()) if np.isfinite(qt).all() else None,
            "qt": [_num(v) for v in qt] if np.isfinite(qt).all() else None,
            "cos": {m: _num(metrics["cos"][m][comp][k]) for m in models if comp in metrics["cos"].get(m, {})},
            "lift": {m: _num(metrics["lift"][m][comp][k]) for m in models if comp in metrics["lift"].get(m, {})},
            "score": {m: [_num(v) for v in scores[m][comp][k]] for m in models
                      if m in scores and comp in scores[m] and np.isfinite(scores[m][comp][k]).all()},
        }
    return rec


def _frame_data(fr: _Frames, k: int, fractions: dict[str, np.ndarray] | None) -> dict[str, Any]:
    maps: dict[str, dict[str, list[str]]] = {}
    for m in fr.files.models:
        for comp, vals in fr.values[m].items():
            if np.isfinite(vals[k]).all():
                maps.setdefault(m, {})[comp] = [_b64(vals[k]), _b64(fr.stderr[m][comp][k])]
    data: dict[str, Any] = {"maps": maps, "fractions": None}
    if fractions is not None:
        data["fractions"] = {r: _b64(fractions[r][k]) for r in REGIONS}
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
    from fstmatch.browse.source import find_verify_dir

    page = Path(out_dir) / "explorer" / "index.html"
    if not page.is_file():
        return False
    vdir = find_verify_dir(out_dir)
    inputs = [*vdir.glob("maps/*.npz"), vdir / "summary.json"]
    newest = max((p.stat().st_mtime for p in inputs if p.is_file()), default=0.0)
    return page.stat().st_mtime >= newest


def write_explorer(out_dir: str | Path, *, manifest: str | Path | None = None, scores: bool = True,
                   device: str = "auto", progress: bool = True) -> Path:
    """Write ``out_dir/explorer/`` for a verify output (or a demo output, whose maps are in
    ``out_dir/verify``) and return the path of its ``index.html``.

    ``manifest`` overrides the manifest path recorded in the run; ``scores=False`` skips loading
    the checkpoints (no score/logit in the page). The folder is built beside the old one and
    swapped in when complete, so an interrupted build leaves the previous copy intact.
    """
    files = RunFiles(out_dir, manifest)
    fr = _Frames(files)
    ts = files.thresholds or THRESHOLDS
    final = Path(out_dir) / "explorer"
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data" / "f").mkdir(parents=True)
    try:
        fractions, frame_scores = _faces_and_scores(fr, tmp, scores, device, progress)
        metrics = _metrics(fr, fractions, ts)
        records = [_frame_record(fr, k, metrics, frame_scores, fractions is not None) for k in range(len(fr.rows))]
        for k in range(len(fr.rows)):
            (tmp / "data" / "f" / f"{k}.js").write_text(_js("FSTX.frame", [k, _frame_data(fr, k, fractions)]))
        index = {
            "title": str(Path(out_dir).resolve().name), "grid": files.grid, "canvas": files.canvas,
            "thresholds": list(ts), "models": files.models, "compressions": list(COMPRESSIONS),
            "regions": {m: ROLE_REGION.get(m) for m in files.models}, "missing": fr.missing,
            "scores": sorted(frame_scores), "frames": records,
        }
        (tmp / "data" / "index.js").write_text(_js("FSTX.index", index))
        assets = resources.files("fstmatch.browse") / "assets"
        for name in ASSETS:
            (tmp / name).write_bytes((assets / name).read_bytes())
        _swap_in(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        print(f"explorer: {len(fr.rows)} frames, {len(files.models)} models -> {final / 'index.html'}", flush=True)
    return final / "index.html"
