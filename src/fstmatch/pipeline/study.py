"""A multi-seed study (``fstmatch demo --seeds 0 1 2``): the study's ``summary.json`` from the
per-seed summaries; the statistics are :mod:`fstmatch.hypotheses.study`'s, the report
:mod:`fstmatch.report.study`'s."""

from __future__ import annotations

import time
from typing import Any

from fstmatch.config import to_dict
from fstmatch.hypotheses.study import Summaries, aggregate


def build_study_summary(cfg: Any, preset: str, per_seed: Summaries, seconds: dict[str, float],
                        wall: float) -> dict[str, Any]:
    """The study's ``summary.json``: shared settings and data, ``aggregate`` and ``per_seed``."""
    first = next(iter(per_seed.values()))
    keep = ("h1", "h2", "h3", "truth", "detection", "fstmatching_vs_det_c40", "training", "seconds")
    return {
        "preset": preset,
        "seeds": list(per_seed),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": first["machine"],
        "config": to_dict(cfg),
        "data": first["data"],
        "images": first["images"],
        "shapley": {k: v for k, v in first["shapley"].items() if k != "n_forward"},
        "aggregate": aggregate(per_seed),
        "per_seed": {str(k): {key: s[key] for key in keep if key in s} for k, s in per_seed.items()},
        "seconds": {**seconds, "total": round(sum(seconds.values()), 1)},
        "invocation_seconds": round(wall, 1),
    }
