"""Per-image numbers of a verify run, kept in its map files so that no reader recomputes them.

:func:`per_image_metrics` takes the map sets a run computed (``<role>__<comp>`` -> rows and maps)
and the ground-truth masks of the analysed frames, and returns, per map set, per metric, the value
of every image id:

- ``qt`` ``(T,)``: Q at each threshold of a detector's map against the source/target union of the
  same frame at the same compression (H1; H2 for ``det_paired`` / ``det_unpaired``); Q = its mean;
- ``delta``: the H3 stability of the model's raw, c23 and c40 maps of the frame (in the raw set);
- ``cos``: cosine of a c23/c40 map to the raw map of the same frame and model;
- ``lift``: ground-truth lift of the map, share / expected (docs/method.md §8) of the region the
  model should use, on the frame's raw masks.

Frames are matched across compressions by (method, video, frame). Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fstmatch.hypotheses.metrics import q_per_image, stability_per_image, unit_normalise
from fstmatch.hypotheses.truth import ROLE_REGION, region_fractions, truth_shares

Row = dict[str, Any]
#: ``metric -> image id -> value`` of one map set
Numbers = dict[str, dict[str, Any]]


def frame_key(row: Row) -> tuple[str, str, int]:
    """The frame a row shows, whatever its compression: (method, video, frame)."""
    return (str(row.get("method")), str(row.get("video")), int(row.get("frame", -1)))


def model_region(role: str) -> str | None:
    """The ground-truth region a model of ``role`` should use (detectors: trace), or ``None``."""
    return ROLE_REGION.get(role, "trace" if role.startswith("det") else None)


def _by_frame(rows: Sequence[Row], values: np.ndarray) -> dict[tuple[str, str, int], tuple[str, np.ndarray]]:
    return {frame_key(r): (r["id"], v) for r, v in zip(rows, values)}


def per_image_metrics(sets: dict[str, tuple[Sequence[Row], np.ndarray]], masks: dict[tuple[str, str, int], np.ndarray],
                      grid: int, thresholds: Sequence[float]) -> dict[str, Numbers]:
    """Per map set name, the per-image numbers above.

    Args:
        sets: ``"<role>__<comp>"`` -> (rows, maps ``(N, G, G)``), comp in raw, c23, c40.
        masks: frame key -> ground-truth masks ``(2, H, W)`` (donor, trace) in [0, 1] (empty: no lift).
        grid: G. thresholds: Q's thresholds.
    """
    out: dict[str, Numbers] = {name: {} for name in sets}
    split = {name: name.rpartition("__") for name in sets}
    roles = {r for r, _, _ in split.values()}
    frames = {name: _by_frame(*sets[name]) for name in sets}
    fractions: dict[tuple[str, str, int], dict[str, np.ndarray]] = {}
    if masks:
        keys = sorted(masks)
        pooled = region_fractions(np.stack([masks[k] for k in keys]), grid)
        fractions = {k: {reg: f[j] for reg, f in pooled.items()} for j, k in enumerate(keys)}
    for name, (rows, _) in sets.items():
        role, _, comp = split[name]
        # H1/H2: Q_t of a detector against the source/target union of the same frame
        if model_region(role) == "trace" and f"source__{comp}" in sets and f"target__{comp}" in sets:
            s, t = frames[f"source__{comp}"], frames[f"target__{comp}"]
            keys = [frame_key(r) for r in rows if frame_key(r) in s and frame_key(r) in t]
            if keys:
                d = frames[name]
                qt = q_per_image(np.stack([s[k][1] for k in keys]), np.stack([t[k][1] for k in keys]),
                                 np.stack([d[k][1] for k in keys]), thresholds)
                out[name]["qt"] = {d[k][0]: qt[j] for j, k in enumerate(keys)}
        # ground-truth lift, on the frame's raw masks
        region = model_region(role)
        if fractions and region is not None:
            keys = [frame_key(r) for r in rows if frame_key(r) in fractions]
            if keys:
                f = np.stack([fractions[k][region] for k in keys])
                d = frames[name]
                share, expected, _ = truth_shares(np.stack([d[k][1] for k in keys]), f)
                with np.errstate(divide="ignore", invalid="ignore"):
                    lift = share / expected
                out[name]["lift"] = {d[k][0]: float(v) for k, v in zip(keys, lift)}
    # H3: δ of each model (in its raw set), cosines of c23/c40 to raw
    for role in roles:
        raw = frames.get(f"{role}__raw")
        if raw is None:
            continue
        for comp in ("c23", "c40"):
            other = frames.get(f"{role}__{comp}")
            if other is None:
                continue
            keys = [k for k in other if k in raw]
            if keys:
                a = unit_normalise(np.stack([raw[k][1] for k in keys]))
                b = unit_normalise(np.stack([other[k][1] for k in keys]))
                out[f"{role}__{comp}"]["cos"] = {other[k][0]: float(v) for k, v in zip(keys, (a * b).sum(axis=(1, 2)))}
        if f"{role}__c23" in frames and f"{role}__c40" in frames:
            c23, c40 = frames[f"{role}__c23"], frames[f"{role}__c40"]
            keys = [k for k in raw if k in c23 and k in c40]
            if keys:
                delta = stability_per_image(*(np.stack([m[k][1] for k in keys]) for m in (raw, c23, c40)))
                out[f"{role}__raw"]["delta"] = {raw[k][0]: float(v) for k, v in zip(keys, delta)}
    return out
