"""``verify(cfg, out_dir, hypotheses)``: the paper's three hypotheses on trained models.

Read it top to bottom: pick the analysed frames, load them (and their ground-truth masks), compute
each needed model's Shapley maps (cached in ``DIR/maps``), then

- H1: per method, Q of the detector against the source/target union (Q > 0 is the claim);
- H2: per method, the Q(t) curves of the paired and unpaired detectors (paired above is the claim);
- H3: per model, δ over the raw/c23/c40 versions of the same frames (δ_det lowest is the claim);
- ground-truth scores of every raw map (FST-Synth only).

Every Q and δ comes with two uncertainties: ``sem`` (standard error over the analysed images — the
whole sampling uncertainty, estimator noise included) and ``noise`` (the standard deviation the
Shapley estimator alone induces, from redrawing the maps with their per-cell stderr).
``DIR/summary.json`` holds every number; figures are PNGs beside it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fstmatch.config import to_dict
from fstmatch.errors import UserError
from fstmatch.hypotheses import figures
from fstmatch.hypotheses.config import NEEDS, ROLES, VerifyConfig
from fstmatch.hypotheses.maps import (
    Maps,
    MapStore,
    counterparts,
    load_checkpoint,
    load_images,
    manifest_path,
    select_images,
    target_key,
)
from fstmatch.hypotheses.metrics import q_metric, q_per_image, stability_per_image
from fstmatch.hypotheses.per_image import frame_key, per_image_metrics
from fstmatch.hypotheses.protocol import train_config, train_run
from fstmatch.hypotheses.stats import attenuation_corrected, perturbed_std, reproducibility, sem
from fstmatch.hypotheses.truth import ROLE_REGION, region_fractions, truth_score
from fstmatch.utils.io import atomic_write_json

H3_MODELS: tuple[str, ...] = ("source", "target", "det")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda was asked for but no CUDA device is available")
    return torch.device(name)


def _exists(path: str | None) -> bool:
    return bool(path) and (Path(path).is_file() or (Path(path) / "model.safetensors").is_file())


def _train_keys(cfg: VerifyConfig) -> dict[str, Any]:
    """``cfg.train`` with the images' alignment as its ``input`` keys: a model trained here sees the
    faces its maps are computed on (one convention, one grid for every map of the run)."""
    geometry = cfg.images.geometry().to_dict()
    given = (cfg.train.get("input") or {}) if isinstance(cfg.train.get("input"), dict) else {}
    clash = [k for k in geometry if k in given and given[k] != geometry[k]]
    if clash:
        raise UserError(f"train.input.{clash[0]} = {given[clash[0]]!r} differs from images.{clash[0]} = "
                        f"{geometry[clash[0]]!r}: models are trained on the faces they are analysed on")
    return {**cfg.train, "input": {**given, **geometry}}


def _noise(statistic: Any, maps: Sequence[Maps], draws: int, seed: int) -> float | None:
    """Estimator noise of ``statistic`` (:func:`perturbed_std`); ``None`` when the maps' stderr is
    undefined (a single antithetic pair or ordering per image gives no spread to measure)."""
    if any(np.isnan(m.stderr).all() for m in maps):
        return None
    return perturbed_std(statistic, [m.values for m in maps], [np.nan_to_num(m.stderr, nan=0.0) for m in maps],
                         draws, seed)


def _sub(m: Maps, idx: Sequence[int]) -> Maps:
    idx = list(idx)
    return Maps([m.ids[i] for i in idx], m.values[idx], m.stderr[idx], m.n_forward)


def _even_per_method(rows: Sequence[dict], count: int | None) -> list[int]:
    """Indices of about ``count`` of ``rows``, spread evenly within each method in proportion to its
    share (at least one per method); every index when ``count`` is None or not below ``len(rows)``."""
    if count is None or count >= len(rows):
        return list(range(len(rows)))
    by_method: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_method.setdefault(r["method"], []).append(i)
    out: list[int] = []
    for idx in by_method.values():
        k = max(1, round(count * len(idx) / len(rows)))
        out += [idx[j] for j in np.unique(np.linspace(0, len(idx) - 1, k).round().astype(int))]
    return sorted(out)


class _Run:
    """State shared by the hypotheses of one verify call: images, models, maps."""

    def __init__(self, cfg: VerifyConfig, out: Path, roles: Iterable[str], progress: bool) -> None:
        from fstmatch.data import read_manifest

        self.cfg, self.out, self.progress = cfg, out, progress
        self.path = manifest_path(cfg.manifest)
        self.root = self.path.parent
        self.rows = read_manifest(self.path)
        self.device = _device(cfg.device)
        self.by_method = select_images(self.rows, cfg.images)
        self.chosen = [r for rows in self.by_method.values() for r in rows]
        self.method_index = {m: [i for i, r in enumerate(self.chosen) if r["method"] == m] for m in self.by_method}
        self.log(f"verify: {len(self.chosen)} images ({', '.join(f'{m} {len(v)}' for m, v in self.by_method.items())})")
        with_masks = cfg.truth and all(r.get("mask_path") for r in self.chosen)
        self.geometry = cfg.images.geometry()
        self.images, self.masks = load_images(self.chosen, self.root, self.geometry, with_masks=with_masks)
        self.store = MapStore(out / "maps", cfg.shapley, self.geometry, self.device, progress, explainer=cfg.explainer)
        self.models: dict[str, Any] = {}
        self.model_info: dict[str, dict[str, Any]] = {}
        self.checkpoints: dict[str, str] = {}
        for role in roles:
            path, arch = cfg.checkpoints.ref(role)
            if cfg.train_missing and arch is None and not _exists(path):
                path = path or str(out / "runs" / role)
                self.log(f"verify: training the missing {role} model into {path}")
                train_run(train_config(role, self.path, _train_keys(cfg), cfg.images.holdout), path)
            self.models[role] = load_checkpoint(role, path, self.path, self.device, arch=arch, geometry=self.geometry)
            self.checkpoints[role] = str(path)
            meta = getattr(self.models[role], "fst_meta", {}) or {}
            self.model_info[role] = {"checkpoint": str(path), "arch": arch, "name": meta.get("name"),
                                     "kwargs": meta.get("kwargs")}
        self.raw: dict[str, Maps] = {}
        #: the map sets computed in this run, "<role>__<comp>" -> (rows, values (N, G, G))
        self.sets: dict[str, tuple[list[dict], np.ndarray]] = {}
        self.forwards: dict[str, int] = {}
        #: per map set, the median over images of the map's predicted relative L2 error, sqrt(sum se²) / ||phi||
        self.map_error: dict[str, float] = {}

    def log(self, text: str) -> None:
        if self.progress:
            print(text, flush=True)

    def maps(self, role: str, comp: str = "raw", rows: Sequence[dict] | None = None,
             images: torch.Tensor | None = None, labels_from: Sequence[dict] | None = None,
             seed_offset: int = 0) -> Maps:
        """Maps of ``role`` at ``comp`` (default: the raw analysed images); ``comp`` names the cache."""
        if comp == "raw" and rows is None:
            if role not in self.raw:
                self.raw[role] = self._compute(role, "raw", self.chosen, self.images, self.chosen, 0, self.masks)
            return self.raw[role]
        assert rows is not None and images is not None
        return self._compute(role, comp, rows, images, labels_from or rows, seed_offset)

    def _compute(self, role: str, comp: str, rows: Sequence[dict], images: torch.Tensor,
                 labels_from: Sequence[dict], seed_offset: int, masks: torch.Tensor | None = None) -> Maps:
        key = target_key(role)
        targets = [int(r[key]) for r in labels_from]
        variant = None if comp in ("raw", "c23", "c40") else comp
        m = self.store.get(f"{role}__{comp}", self.models[role], self.checkpoints[role],
                           rows, images, targets, desc=f"{role} {comp}", seed_offset=seed_offset, masks=masks,
                           variant=variant)
        self.forwards[f"{role}__{comp}"] = m.n_forward
        self.map_error[f"{role}__{comp}"] = m.median_relative_error()
        if variant is None:
            self.sets[f"{role}__{comp}"] = (list(rows), m.values)
        return m

    def annotate(self) -> None:
        """Write the per-image numbers (:func:`fstmatch.hypotheses.per_image.per_image_metrics`) of
        every map set of this run into its map file."""
        masks = {}
        if self.masks is not None:
            masks = {frame_key(r): m for r, m in zip(self.chosen, self.masks.numpy())}
        numbers = per_image_metrics(self.sets, masks, self.cfg.shapley.grid, self.cfg.thresholds)
        for name, metrics in numbers.items():
            self.store.annotate(name, metrics)


def _q_block(s: Maps, t: Maps, d: Maps, cfg: VerifyConfig, seed: int) -> dict[str, Any]:
    """Q, its curve, SEM over images and estimator noise for one method's maps."""
    ts = cfg.thresholds
    per = q_per_image(s.values, t.values, d.values, ts)
    noise = _noise(lambda a, b, c: q_metric(a, b, c, ts), [s, t, d], cfg.noise_draws, seed)
    return {
        "Q": float(per.mean()),
        "sem": sem(per.mean(axis=1)),
        "noise": noise,
        "curve": {str(th): float(v) for th, v in zip(ts, per.mean(axis=0))},
        "curve_sem": [sem(per[:, j]) for j in range(len(ts))],
        "per_image": per.mean(axis=1),
        "n": len(per),
    }


def run_h1(run: _Run) -> dict[str, Any]:
    """Hypothesis 1: Q per method (detector ``det`` against the source/target union)."""
    cfg = run.cfg
    run.log("H1: Q of det against the source/target union, per method")
    s, t, d = run.maps("source"), run.maps("target"), run.maps("det")
    out: dict[str, Any] = {"Q": {}, "sem": {}, "noise": {}, "curve": {}, "n_images": {}, "figures": {}}
    for k, (method, idx) in enumerate(run.method_index.items()):
        b = _q_block(_sub(s, idx), _sub(t, idx), _sub(d, idx), cfg, seed=k)
        out["Q"][method], out["sem"][method], out["noise"][method] = b["Q"], b["sem"], b["noise"]
        out["curve"][method], out["n_images"][method] = b["curve"], b["n"]
        paths = []
        for i in idx[: cfg.figures_per_method]:
            row = run.chosen[i]
            path = run.out / "h1" / f"{row['id'].replace('/', '__')}.png"
            image = (run.images[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            figures.h1_example(image, s.values[i], t.values[i], d.values[i], cfg.figure_threshold, path,
                               title=f"{row['id']}  (source {row['source']}, target {row['target']})")
            paths.append(str(path.relative_to(run.out)))
        out["figures"][method] = paths
    figures.bar_chart(out["Q"], out["sem"], run.out / "h1_Q.png", "Q", "H1: Q per method (±SEM over images)")
    out["figure"] = "h1_Q.png"
    out["holds"] = all(q > 0 for q in out["Q"].values())
    out["clear"] = all(q > 2 * out["sem"][m] for m, q in out["Q"].items())
    out["claim"] = "Q > 0 for every method: det relies on cells neither source- nor target-relevant"
    return out


def run_h2(run: _Run) -> dict[str, Any]:
    """Hypothesis 2: Q(t) of the paired and unpaired detectors, per method."""
    cfg = run.cfg
    run.log("H2: Q(t) curves of the paired and unpaired detectors, per method")
    s, t = run.maps("source"), run.maps("target")
    dp, du = run.maps("det_paired"), run.maps("det_unpaired")
    out: dict[str, Any] = {k: {} for k in ("Q_paired", "Q_unpaired", "sem_paired", "sem_unpaired", "noise_paired",
                                           "noise_unpaired", "curve_paired", "curve_unpaired", "diff", "diff_sem",
                                           "above_at", "n_images")}
    errs_p, errs_u = {}, {}
    for k, (method, idx) in enumerate(run.method_index.items()):
        ss, tt = _sub(s, idx), _sub(t, idx)
        bp, bu = _q_block(ss, tt, _sub(dp, idx), cfg, seed=2 * k), _q_block(ss, tt, _sub(du, idx), cfg, seed=2 * k + 1)
        out["Q_paired"][method], out["Q_unpaired"][method] = bp["Q"], bu["Q"]
        out["sem_paired"][method], out["sem_unpaired"][method] = bp["sem"], bu["sem"]
        out["noise_paired"][method], out["noise_unpaired"][method] = bp["noise"], bu["noise"]
        out["curve_paired"][method], out["curve_unpaired"][method] = bp["curve"], bu["curve"]
        diff = bp["per_image"] - bu["per_image"]  # the same images: a paired difference
        out["diff"][method], out["diff_sem"][method] = float(diff.mean()), sem(diff)
        out["above_at"][method] = sum(bp["curve"][th] > bu["curve"][th] for th in bp["curve"])
        out["n_images"][method] = bp["n"]
        errs_p[method], errs_u[method] = bp["curve_sem"], bu["curve_sem"]
    curves_p = {m: {float(th): v for th, v in c.items()} for m, c in out["curve_paired"].items()}
    curves_u = {m: {float(th): v for th, v in c.items()} for m, c in out["curve_unpaired"].items()}
    figures.h2_curves(curves_p, curves_u, errs_p, errs_u, run.out / "h2_curves.png")
    out["figure"] = "h2_curves.png"
    out["thresholds"] = len(cfg.thresholds)
    out["holds"] = all(n == len(cfg.thresholds) for n in out["above_at"].values())
    out["clear"] = all(d > 2 * out["diff_sem"][m] for m, d in out["diff"].items())
    out["claim"] = "the paired detector's Q(t) curve lies above the unpaired one's, for every method"
    return out


def run_h3(run: _Run) -> dict[str, Any]:
    """Hypothesis 3: δ per model over raw/c23/c40 versions of the analysed frames.

    The c23/c40 maps use orderings independent of the raw maps' (seed + 1), as the reference does:
    shared orderings would give the three maps correlated estimator errors and pull δ towards 1.
    Independent estimator noise pulls δ down instead, more for noisier maps; so each model's raw
    maps are also estimated a second time (seed + 1) and ``reproducibility`` = mean cos(φ_raw,
    φ_raw') measures that attenuation. ``delta_corrected = delta / reproducibility`` (Spearman's
    correction for attenuation) compares models net of their estimator noise.
    """
    cfg = run.cfg
    run.log("H3: stability δ of each model's maps under compression")
    triples, skipped = counterparts(run.rows, run.chosen)
    if not triples:
        raise UserError(f"hypothesis 3: none of the {len(run.chosen)} analysed frames exists at raw, c23 and c40")
    missing = set(skipped)
    keep = [i for i, r in enumerate(run.chosen) if r["id"] not in missing]
    raw_rows = [a for a, _, _ in triples]
    rep = _even_per_method(raw_rows, cfg.repeat_images)
    repeat_rows = [raw_rows[i] for i in rep]
    # comp -> (rows, images, the raw rows whose labels they are explained for)
    versions = {"raw_repeat": (repeat_rows, run.images[[keep[i] for i in rep]], repeat_rows)}
    for comp, col in (("c23", 1), ("c40", 2)):
        rows = [tr[col] for tr in triples]
        images, _ = load_images(rows, run.root, run.geometry, landmarks_from=raw_rows)
        versions[comp] = (rows, images, raw_rows)
    out: dict[str, Any] = {k: {} for k in ("delta", "sem", "noise", "reproducibility", "delta_corrected",
                                           "by_method", "gap", "gap_sem", "gap_corrected")}
    per_model: dict[str, np.ndarray] = {}
    for k, role in enumerate(H3_MODELS):
        raw = _sub(run.maps(role), keep)
        again, c23, c40 = (run.maps(role, comp, rows, images, labels_from=labels, seed_offset=1)
                           for comp, (rows, images, labels) in versions.items())
        per = stability_per_image(raw.values, c23.values, c40.values)
        out["delta"][role], out["sem"][role] = float(per.mean()), sem(per)
        out["noise"][role] = _noise(lambda a, b, c: float(stability_per_image(a, b, c).mean()),
                                    [raw, c23, c40], cfg.noise_draws, seed=100 + k)
        per_model[role] = per
        out["reproducibility"][role] = repro = reproducibility(raw.values[rep], again.values)
        out["delta_corrected"][role] = attenuation_corrected(out["delta"][role], repro)
        out["by_method"][role] = {
            m: float(per[[j for j, r in enumerate(raw_rows) if r["method"] == m]].mean())
            for m in run.by_method if any(r["method"] == m for r in raw_rows)
        }
    figures.bar_chart(out["delta"], out["sem"], run.out / "h3_delta.png", "δ",
                      "H3: stability under compression (±SEM)", zero_line=False)
    out["figure"] = "h3_delta.png"
    out["n_images"], out["skipped"], out["skipped_ids"] = len(triples), len(skipped), skipped
    out["n_repeat"] = len(rep)
    d, dc = out["delta"], out["delta_corrected"]
    for role in ("source", "target"):  # the claim's margins, on the same frames: a paired difference
        out["gap"][role] = float((per_model[role] - per_model["det"]).mean())
        out["gap_sem"][role] = sem(per_model[role] - per_model["det"])
        out["gap_corrected"][role] = None if None in (dc[role], dc["det"]) else dc[role] - dc["det"]
    out["holds"] = d["det"] < d["source"] and d["det"] < d["target"]
    out["holds_corrected"] = (None if None in dc.values()
                              else dc["det"] < dc["source"] and dc["det"] < dc["target"])
    out["claim"] = "δ_det < δ_source and δ_det < δ_target: artifact concepts move under compression"
    return out


def run_truth(run: _Run) -> dict[str, Any]:
    """Ground-truth scores (docs/method.md §8) of every raw map computed in this run."""
    if run.masks is None:
        return {}
    fractions = region_fractions(run.masks, run.cfg.shapley.grid)
    out: dict[str, Any] = {}
    for role in ROLES:
        if role not in run.models:
            continue
        region = ROLE_REGION[role]
        maps = run.maps(role)
        score: dict[str, Any] = {"region": region, **truth_score(maps.values, fractions[region])}
        score["by_method"] = {m: truth_score(maps.values[idx], fractions[region][idx])["lift"]
                              for m, idx in run.method_index.items()}
        out[role] = score
    return out


def verify(cfg: VerifyConfig, out_dir: str | Path, hypotheses: Sequence[int] = (1, 2, 3),
           progress: bool = True) -> dict[str, Any]:
    """Run the asked hypotheses; write ``DIR/summary.json`` (merged with an earlier one) and figures."""
    bad = [h for h in hypotheses if h not in NEEDS]
    if bad:
        raise UserError(f"unknown hypothesis {bad}; choose from 1, 2, 3")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    roles = [r for r in ROLES if any(r in NEEDS[h] for h in hypotheses)]
    if cfg.checkpoints.fstmatching and cfg.truth:
        roles.append("fstmatching")
    start = time.perf_counter()
    run = _Run(cfg, out, roles, progress)
    summary: dict[str, Any] = {}
    if (out / "summary.json").is_file():
        import json

        summary = json.loads((out / "summary.json").read_text("utf-8"))
    timings = summary.get("seconds", {})
    for h, fn in ((1, run_h1), (2, run_h2), (3, run_h3)):
        if h in hypotheses:
            t0 = time.perf_counter()
            summary[f"h{h}"] = fn(run)
            timings[f"h{h}"] = round(time.perf_counter() - t0, 1)
    truth = run_truth(run)
    run.annotate()
    if truth:
        summary["truth"] = {**summary.get("truth", {}), **truth}
    summary["models"] = {**summary.get("models", {}), **run.model_info}
    summary["images"] = {
        "manifest": str(run.path), "split": cfg.images.split, "holdout": cfg.images.holdout,
        "per_method": {m: len(v) for m, v in run.by_method.items()}, "total": len(run.chosen),
        "ids": [r["id"] for r in run.chosen],
    }
    summary["explainer"] = cfg.explainer  # what made every map (the shapley block applies to "shapley")
    summary["shapley"] = {
        "grid": cfg.shapley.grid, "budget": cfg.shapley.budget, "weights_dtype": cfg.shapley.weights_dtype,
        "estimator": cfg.shapley.estimator, "seed": cfg.shapley.seed,
        "n_forward": {**summary.get("shapley", {}).get("n_forward", {}), **run.forwards},
        "map_relative_error": {**summary.get("shapley", {}).get("map_relative_error", {}), **run.map_error},
    }
    summary["config"] = to_dict(cfg)
    timings["total"] = round(time.perf_counter() - start, 1)
    summary["seconds"] = timings
    atomic_write_json(out / "summary.json", _clean(summary))
    return summary


def _clean(obj: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, arrays dropped (per-image arrays stay internal)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if not isinstance(v, np.ndarray)}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
