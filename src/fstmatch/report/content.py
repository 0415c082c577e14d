"""What the report says: a summary dict (of ``fstmatch verify`` or ``fstmatch demo``) turned into
document blocks (:mod:`fstmatch.report.render`) and a console digest."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fstmatch.report.render import Block

MODEL_TEXT = {
    "source": "source encoder (identity A of fake A_B, raw-trained)",
    "target": "target encoder (donor identity B, raw-trained)",
    "det": "detector of H1/H3 (raw-trained)",
    "det_paired": "detector trained on the paired set (H2)",
    "det_unpaired": "detector trained on the unpaired set (H2)",
    "fstmatching": "FST-Matching model (all compressions)",
}


def num(v: Any, digits: int = 3) -> str:
    """Compact number: scientific below 0.01 in magnitude, fixed otherwise; '–' for missing/NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = float(v)
    if v != 0 and abs(v) < 0.01:
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}f}"


def pm(value: Any, err: Any) -> str:
    return f"{num(value)} ± {num(err)}"


def verdict(holds: bool | None, clear: bool | None = None) -> str:
    if holds is None:
        return "not tested"
    if not holds:
        return "**did not hold** here"
    if clear is None:
        return "**held** here"
    return "**held** here" + (" (beyond 2 SEM)" if clear else " (but within 2 SEM: not conclusive)")


def h1_blocks(h1: Mapping[str, Any]) -> list[Block]:
    rows = [[m, num(q), num(h1["sem"][m]), num(h1["noise"][m]), h1["n_images"][m]] for m, q in h1["Q"].items()]
    out: list[Block] = [
        ("h", 2, "Hypothesis 1: the detector uses cells that are neither source- nor target-relevant"),
        ("p", "For each fake frame, Shapley maps of the source encoder (φs), the target encoder (φt) and the "
              "detector (φd) are unit-normalised; the top cells of max(φs, φt) form the union U (at 8 thresholds "
              "0.60…0.95); `Q_t = (Σ_{cells ∉ U} φd − Σ_{cells ∈ U} φd) / G²`, averaged over thresholds and "
              "images. **Q > 0** means the detector relies on cells outside the identity-relevant ones."),
        ("table", ["method", "Q", "SEM (images)", "estimator noise", "images"], rows),
        ("p", f"Claim: {h1['claim']}. Verdict: {verdict(h1['holds'], h1.get('clear'))}."),
        ("img", h1["figure"], "Q per method, ±SEM over images"),
    ]
    for method, paths in h1.get("figures", {}).items():
        if paths:
            out.append(("img", paths[0], f"{method}: face | φ source | φ target | φ det | overlap of the top "
                        "cells (cyan: source/target only, orange: det only, maroon: both)"))
    return out


def h2_blocks(h2: Mapping[str, Any]) -> list[Block]:
    rows = [[m, pm(h2["Q_paired"][m], h2["sem_paired"][m]), pm(h2["Q_unpaired"][m], h2["sem_unpaired"][m]),
             pm(h2["diff"][m], h2["diff_sem"][m]), f"{h2['above_at'][m]}/{h2['thresholds']}"]
            for m in h2["Q_paired"]]
    return [
        ("h", 2, "Hypothesis 2: paired training sets push the detector further from identity cells"),
        ("p", "Two detectors of the same architecture are trained on equally sized sets: *paired* (the fakes "
              "come with both their real videos) and *unpaired* (the fakes' source and target videos are absent "
              "from the reals). The claim: the paired detector's Q(t) curve lies above the unpaired one's."),
        ("table", ["method", "Q paired ± SEM", "Q unpaired ± SEM", "paired − unpaired ± SEM",
                   "thresholds where paired is above"], rows),
        ("p", f"Claim: {h2['claim']}. Verdict: {verdict(h2['holds'], h2.get('clear'))}."),
        ("img", h2["figure"], "Q(t) of the paired and unpaired detectors per method (bands: ±SEM over images)"),
    ]


def h3_blocks(h3: Mapping[str, Any]) -> list[Block]:
    repro, corr = h3.get("reproducibility", {}), h3.get("delta_corrected", {})
    rows = [[m, MODEL_TEXT.get(m, m), num(d), num(h3["sem"][m]), num(h3["noise"][m]), num(repro.get(m)),
             num(corr.get(m))] for m, d in h3["delta"].items()]
    return [
        ("h", 2, "Hypothesis 3: artifact concepts are the least stable under compression"),
        ("p", "Each model's map of the raw frame is compared with its maps of the c23 and c40 versions of the same "
              "frame (aligned with the raw frame's landmarks, so compression is the only difference): "
              "`δ = (cos(φ_raw, φ_c23) + cos(φ_raw, φ_c40)) / 2`, averaged over frames."),
        ("p", "The c23/c40 maps use Shapley orderings independent of the raw maps' (as the reference does), so "
              "estimator noise lowers δ, more for models with noisier maps. **reproducibility** is the cosine "
              "between two independent estimates of the same raw map; **δ / reproducibility** (correction for "
              "attenuation) compares the models net of that noise."),
        ("table", ["model", "what", "δ", "SEM (images)", "estimator noise", "reproducibility", "δ / reproducibility"],
         rows),
        ("p", f"{h3['n_images']} frames; {h3['skipped']} skipped (missing at some compression). "
              f"Claim: {h3['claim']}. Verdict on δ: {verdict(h3['holds'])}; on δ / reproducibility: "
              f"{verdict(h3.get('holds_corrected'))}."),
        ("img", h3["figure"], "δ per model, ±SEM over frames"),
    ]


def truth_blocks(truth: Mapping[str, Any]) -> list[Block]:
    rows = [[m, t["region"], num(t["share"]), num(t["expected"]), num(t["lift"]), t["n"]] for m, t in truth.items()]
    return [
        ("h", 2, "Ground truth: do the maps point where the pixels say they should?"),
        ("p", "FST-Synth knows which pixels of a fake came from the donor (target identity) and which carry "
              "manipulation traces. Pooled to the grid (a cell counts in proportion to the fraction of its pixels "
              "in the region), each map's share of positive mass on its region is compared with the region's area: "
              "detectors → trace cells, target encoder → donor cells, source encoder → the rest. "
              "**lift** = share / expected; 1 is chance."),
        ("table", ["model", "region", "share of positive mass", "expected by area", "lift", "images"], rows),
    ]


def detection_blocks(detection: Mapping[str, Any], note: str = "") -> list[Block]:
    comps = ["raw", "c23", "c40"]
    rows = []
    for model, per in detection.items():
        cells = []
        for c in comps:
            d = per.get(c, {})
            cells.append(f"{num(d.get('auc'))} / {num(d.get('video_auc'))}" if d else "–")
        rows.append([model, *cells])
    out: list[Block] = [("h", 2, "Detection: frame AUC / video AUC on the test split")]
    if note:
        out.append(("p", note))
    out.append(("table", ["model", *comps], rows))
    return out


def hypothesis_blocks(summary: Mapping[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    if "h1" in summary:
        blocks += h1_blocks(summary["h1"])
    if "h2" in summary:
        blocks += h2_blocks(summary["h2"])
    if "h3" in summary:
        blocks += h3_blocks(summary["h3"])
    if summary.get("truth"):
        blocks += truth_blocks(summary["truth"])
    return blocks


def format_verify(summary: Mapping[str, Any]) -> str:
    """Console digest of a verify summary."""
    lines = []
    if "h1" in summary:
        h1 = summary["h1"]
        lines.append("H1  Q per method (± SEM over images; estimator noise):")
        lines += [f"    {m:<15} {num(q):>10} ± {num(h1['sem'][m])}  (noise {num(h1['noise'][m])})"
                  for m, q in h1["Q"].items()]
        lines.append(f"    claim {'held' if h1['holds'] else 'did NOT hold'}: {h1['claim']}")
    if "h2" in summary:
        h2 = summary["h2"]
        lines.append("H2  Q paired vs unpaired (difference ± SEM):")
        lines += [f"    {m:<15} {num(h2['Q_paired'][m]):>10} vs {num(h2['Q_unpaired'][m]):>10}   "
                  f"diff {pm(h2['diff'][m], h2['diff_sem'][m])}" for m in h2["Q_paired"]]
        lines.append(f"    claim {'held' if h2['holds'] else 'did NOT hold'}: {h2['claim']}")
    if "h3" in summary:
        h3 = summary["h3"]
        lines.append(f"H3  δ per model ({h3['n_images']} frames, {h3['skipped']} skipped):")
        lines += [f"    {m:<15} {num(d):>10} ± {num(h3['sem'][m])}  (noise {num(h3['noise'][m])}; "
                  f"reproducibility {num(h3.get('reproducibility', {}).get(m))}, "
                  f"δ/repro {num(h3.get('delta_corrected', {}).get(m))})" for m, d in h3["delta"].items()]
        lines.append(f"    claim {'held' if h3['holds'] else 'did NOT hold'}: {h3['claim']}")
    if summary.get("truth"):
        lines.append("Ground truth (share of positive mass on the right cells / expected by area = lift):")
        lines += [f"    {m:<15} {t['region']:<6} {num(t['share'])} / {num(t['expected'])} = {num(t['lift'])}"
                  for m, t in summary["truth"].items()]
    return "\n".join(lines)
