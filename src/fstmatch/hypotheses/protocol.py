"""The training protocol of the study: which data each analysed or compared model is trained on.

Analysed models (H1-H3) are trained on **raw** training frames, with the analysed frames held out
(docs/method.md §5): ``source``, ``target``, ``det`` (H1, H3), ``det_paired`` and ``det_unpaired`` (H2). The
detection comparison trains ``det_all`` and ``fstmatching`` alike on the training frames of **all
three** compressions. Used by ``fstmatch demo`` and by ``fstmatch verify`` with ``train_missing``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fstmatch.config import from_dict, merge
from fstmatch.errors import UserError

#: Run name -> TrainConfig keys fixed by the protocol. ``"{holdout}"``: the analysis holdout.
RUNS: dict[str, dict[str, Any]] = {
    "source": {"model": {"role": "source"}, "data": {"compressions": ["raw"], "holdout": "{holdout}"}},
    "target": {"model": {"role": "target"}, "data": {"compressions": ["raw"], "holdout": "{holdout}"}},
    "det": {"model": {"role": "det"}, "data": {"compressions": ["raw"], "holdout": "{holdout}"}},
    "det_paired": {"model": {"role": "det"},
                   "data": {"compressions": ["raw"], "set_name": "paired", "holdout": "{holdout}"}},
    "det_unpaired": {"model": {"role": "det"},
                     "data": {"compressions": ["raw"], "set_name": "unpaired", "holdout": "{holdout}"}},
    "det_all": {"model": {"role": "det"}, "data": {"compressions": None}},
    "fstmatching": {"model": {"role": "fstmatching"}, "data": {"compressions": None}},
}

#: The detection comparison: key in ``summary["detection"]`` -> run tested. ``det`` is the detector
#: trained alike with FST-Matching (all compressions); ``det_raw`` the raw-trained one of H1/H3.
DETECTION: dict[str, str] = {"det": "det_all", "fstmatching": "fstmatching", "det_raw": "det"}


def train_config(name: str, manifest: str | Path, shared: Mapping[str, Any], holdout: float,
                 override: Mapping[str, Any] | None = None, seed: int | None = None) -> Any:
    """The TrainConfig of run ``name``: ``shared`` keys < protocol < ``override`` (manifest and seed last)."""
    from fstmatch.train import TrainConfig

    if name not in RUNS:
        raise UserError(f"unknown run {name!r}; choose from: {', '.join(RUNS)}")
    protocol = json.loads(json.dumps(RUNS[name]).replace('"{holdout}"', json.dumps(holdout)))
    data = merge(merge(dict(shared), protocol), dict(override or {}))
    data = merge(data, {"data": {"manifest": str(manifest)}})
    if seed is not None:
        data["seed"] = seed
    return from_dict(TrainConfig, data)


def train_run(cfg: Any, run: str | Path) -> None:
    """Train ``cfg`` into ``run``, resuming an interrupted run; restart one made with other settings."""
    from fstmatch.train import train

    run = Path(run)
    if not (run / "state.pt").is_file():
        train(cfg, run)
        return
    try:
        train(cfg, run, resume=True)
    except UserError as e:  # the settings changed since the interrupted run: start over
        if "config" not in str(e).lower():
            raise
        print(f"{run}: settings changed since the earlier run; training it again", flush=True)
        train(cfg, run, force=True)
