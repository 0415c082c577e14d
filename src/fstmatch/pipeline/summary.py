"""The demo's ``summary.json``: what one run measured, gathered from its run, verify and test folders
(laid out by :mod:`fstmatch.report.demo`)."""

from __future__ import annotations

import json
import math
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fstmatch.config import to_dict
from fstmatch.ffpp import COMPRESSIONS
from fstmatch.hypotheses.protocol import DETECTION, RUNS
from fstmatch.hypotheses.stats import auc_stderr


def _last_validation(run: Path) -> dict[str, float]:
    log = run / "log.jsonl"
    if not log.is_file():
        return {}
    from fstmatch.utils.io import read_jsonl

    vals = [r for r in read_jsonl(log) if any(k.startswith("val_") for k in r)]
    return {k[4:]: v for k, v in vals[-1].items() if k.startswith("val_")} if vals else {}


def _detection(out: Path) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key in DETECTION:
        res = json.loads((out / "test" / f"{key}.json").read_text("utf-8"))
        table[key] = {}
        for comp in COMPRESSIONS:
            d = res["by_compression"].get(comp)
            if d is None:
                continue
            row = {k: d.get(k) for k in ("auc", "acc", "eer", "ap", "video_auc", "n", "n_real", "n_fake")}
            row["auc_se"] = auc_stderr(d.get("auc", float("nan")), d.get("n_fake", 0), d.get("n_real", 0))
            table[key][comp] = row
    return table


def data_summary(manifest: Path) -> dict[str, Any]:
    """Frames, videos, splits, identities and methods of the prepared data."""
    from fstmatch.data import read_manifest

    rows = read_manifest(manifest)
    return {
        "frames": len(rows),
        "videos": len({(r["method"], r["video"]) for r in rows}),
        "frames_by_split": dict(Counter(r["split"] for r in rows)),
        "identities": len({r["source"] for r in rows} | {r["target"] for r in rows}),
        "methods": sorted({r["method"] for r in rows} - {"real"}),
    }


def machine() -> str:
    return f"{platform.machine()}, {usable_cpus()} CPU threads"


def build_summary(out: Path, manifest: Path, cfg: Any, preset: str, train_cfgs: dict[str, Any],
                  seconds: dict[str, float], wall: float, seed: int | None = None) -> dict[str, Any]:
    """Everything one run measured (``out`` holds its ``runs/``, ``verify/`` and ``test/``), with the
    keys the issue fixes (``h1.Q[method]``, …). ``seed``: the training seed, when it is a study's."""
    verify = json.loads((out / "verify" / "summary.json").read_text("utf-8"))
    data = data_summary(manifest)
    for key in ("h1", "h2", "h3"):
        figs = verify[key]
        figs["figure"] = f"verify/{figs['figure']}"
        if key == "h1":
            figs["figures"] = {m: [f"verify/{p}" for p in ps] for m, ps in figs["figures"].items()}
    detection = _detection(out)
    c40 = {k: detection[k].get("c40", {}) for k in ("det", "fstmatching")}
    return {
        "preset": preset,
        "seed": seed if seed is not None else cfg.train.get("seed", cfg.seed),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "config": to_dict(cfg),
        "data": data,
        "runs": {name: f"runs/{name}" for name in RUNS},
        "detection_runs": {k: f"runs/{v}" for k, v in DETECTION.items()},
        "training": {name: {"role": tc.model.role, "compressions": tc.data.compressions, "set": tc.data.set_name,
                            "holdout": tc.data.holdout, "epochs": tc.epochs, "canvas": tc.input.canvas,
                            "width": tc.model.width, "validation": _last_validation(out / "runs" / name)}
                     for name, tc in train_cfgs.items()},
        "h1": verify["h1"],
        "h2": verify["h2"],
        "h3": verify["h3"],
        "truth": verify.get("truth", {}),
        "detection": detection,
        "fstmatching_vs_det_c40": {
            "fstmatching_auc": c40["fstmatching"].get("auc"), "det_auc": c40["det"].get("auc"),
            "difference": _diff(c40["fstmatching"].get("auc"), c40["det"].get("auc")),
            "stderr": math.hypot(c40["fstmatching"].get("auc_se", float("nan")), c40["det"].get("auc_se", float("nan"))),
        },
        "models": verify.get("models", {}),
        "images": {k: v for k, v in verify.get("images", {}).items() if k != "ids"},
        "explainer": verify.get("explainer", "shapley"),
        "shapley": verify.get("shapley", {}),
        "seconds": {**seconds, "total": round(sum(seconds.values()), 1)},  # every stage, across invocations
        "invocation_seconds": round(wall, 1),  # this invocation (skipped stages cost ~0)
    }


def _diff(a: Any, b: Any) -> float:
    return float("nan") if a is None or b is None else float(a) - float(b)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity), as the demo counts them for ``jobs`` too."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
