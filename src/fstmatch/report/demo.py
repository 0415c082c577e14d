"""The demo's report (``report.md``, ``report.html``) for a newcomer, from its ``summary.json``
(:func:`fstmatch.pipeline.summary.build_summary`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fstmatch.ffpp import COMPRESSIONS
from fstmatch.report import write_report
from fstmatch.report.content import (
    MODEL_TEXT,
    detection_blocks,
    h1_blocks,
    h2_blocks,
    h3_blocks,
    num,
    truth_blocks,
)
from fstmatch.report.render import Block


def _claims(s: dict[str, Any]) -> list[str]:
    h1, h2, h3, fd = s["h1"], s["h2"], s["h3"], s["fstmatching_vs_det_c40"]
    said = lambda ok: "held" if ok else "did NOT hold"  # noqa: E731
    neg = [m for m, q in h1["Q"].items() if q <= 0]
    return [
        f"H1 (Q > 0 for every method): {said(h1['holds'])}"
        + (f" — Q ≤ 0 for {', '.join(neg)}" if neg else "")
        + (" (every Q beyond 2 SEM)" if h1.get("clear") else " (not every Q is beyond 2 SEM)") + ".",
        f"H2 (paired curve above unpaired for every method): {said(h2['holds'])}; paired above at "
        + ", ".join(f"{m} {n}/{h2['thresholds']}" for m, n in h2["above_at"].items())
        + f" thresholds; mean Q paired − unpaired > 0 for {sum(d > 0 for d in h2['diff'].values())}/{len(h2['diff'])} "
        f"methods, beyond 2 SEM for {sum(d > 2 * h2['diff_sem'][m] for m, d in h2['diff'].items())}.",
        f"H3 (δ_det below δ_source and δ_target): {said(h3['holds'])}; δ = "
        + ", ".join(f"{m} {num(d)} ± {num(h3['sem'][m])}" for m, d in h3["delta"].items())
        + f"; net of estimator noise (δ / reproducibility) it {said(h3.get('holds_corrected'))}: "
        + ", ".join(f"{m} {num(d)}" for m, d in h3.get("delta_corrected", {}).items()) + ".",
        f"FST-Matching vs det on c40 (frame AUC): {num(fd['fstmatching_auc'])} vs {num(fd['det_auc'])}, "
        f"difference {num(fd['difference'])} ± {num(fd['stderr'])} (Hanley–McNeil SE)"
        + (": FST-Matching is better here." if (fd["difference"] or 0) > 0 else ": FST-Matching is not better here."),
    ]


def demo_blocks(s: dict[str, Any]) -> list[Block]:
    """The report, top to bottom."""
    d, sh, im = s["data"], s["shapley"], s["images"]
    stage_rows = [[name, f"{sec:.0f}"] for name, sec in s["seconds"].items() if name != "total"]
    stage_rows.append(["**total (all stages)**", f"{s['seconds']['total']:.0f}"])
    stage_rows.append(["this invocation (finished stages are skipped)", f"{s.get('invocation_seconds', 0):.0f}"])
    train_rows = [[name, MODEL_TEXT.get(name, "detector trained on all compressions (detection table)"),
                   ", ".join(t["compressions"] or COMPRESSIONS), t["set"], t["holdout"], t["epochs"],
                   ", ".join(f"{k} {num(v)}" for k, v in t["validation"].items()) or "–"]
                  for name, t in s["training"].items()]
    blocks: list[Block] = [
        ("h", 1, f"FST-Matching on FST-Synth — demo report ({s['preset']} preset)"),
        ("p", "The ECCV 2022 paper *Explaining Deepfake Detection by Analysing Image Matching* proposes three "
              "hypotheses about what binary deepfake detectors learn, measured with Shapley values of grid cells "
              "(visual concepts) of three models looking at the same fake frame: a **source encoder** (who is in "
              "the frame's background/context: identity A of fake A_B), a **target encoder** (whose face was "
              "inserted: the donor B) and the **detector**. This report reruns the whole study on FST-Synth, a "
              "synthetic FaceForensics++ made offline, whose ground truth (which pixels came from the donor, "
              "where the blending left traces) lets us also check the explanations themselves."),
        ("p", f"Run on {s['date']}, {s['machine']}, training seed {s.get('seed', '–')}. Everything is in `summary.json`; every stage is resumable "
              "(rerunning `fstmatch demo` skips finished stages)."),
        ("h", 2, "Claims, in one place"),
        ("ul", _claims(s)),
        ("p", "These are small CPU models trained for minutes on synthetic faces: the numbers test the pipeline and "
              "show what FST-Synth supports, not the paper's numbers on FF++. **SEM** is the standard error over "
              "the analysed images (it includes Shapley estimator noise); **estimator noise** is the part caused "
              "by the Shapley sampling alone (maps redrawn from their per-cell stderr). Neither includes the "
              "variation between training runs, which is often larger: on the laptop preset, seed 0's H1 and H2 "
              "verdicts differ from those of a ten-seed study. Read one run's verdicts as anecdotes; "
              "`fstmatch demo --seeds 0 1 2 3 4 5 6 7 8 9` judges each claim across independently trained models."),
        ("h", 2, "What was run"),
        ("p", f"Data: {d['videos']} videos ({d['identities']} identities; methods {', '.join(d['methods'])}), "
              f"{d['frames']} face crops ({', '.join(f'{k} {v}' for k, v in d['frames_by_split'].items())}). "
              + (f"Maps: `{s['explainer']}` (its pixel maps summed over each cell of the grid "
                 f"{sh['grid']}×{sh['grid']}; deterministic, so no estimator error); "
                 if s.get("explainer", "shapley") != "shapley" else
                 f"Shapley: grid {sh['grid']}×{sh['grid']}, {sh['budget']} orderings' worth of forwards per image "
                 f"(estimator `{sh['estimator']}`), {sum(sh['n_forward'].values()):,} forward passes in all; "
                 f"{_map_error_text(sh)}")
              + f"{im['total']} analysed fake frames ({', '.join(f'{m} {n}' for m, n in im['per_method'].items())}), "
              f"held out of the encoders' and detectors' training."),
        ("p", "Protocol: the encoders and detectors analysed in H1–H3 are trained on **raw** frames (the paper's "
              "raw training set). For the detection comparison, a detector (`det` in the table: run `det_all`) and "
              "the FST-Matching model are trained alike on the training frames of **all three** compressions and "
              "tested per compression; `det_raw` is the raw-trained detector of H1/H3, shown for context."),
        ("table", ["run", "what", "trained on", "set", "held-out frames/video", "epochs", "last validation"],
         train_rows),
        ("p", "Validation of the runs with held-out frames is on those frames (other frames of their training "
              "videos: a sanity check, not generalisation); the all-compression runs validate on the val split, "
              "whose identities are not training identities, so FST-Matching's source/target head accuracy there "
              "is 0 by construction."),
        ("table", ["stage", "seconds"], stage_rows),
    ]
    blocks += h1_blocks(s["h1"]) + h2_blocks(s["h2"]) + h3_blocks(s["h3"])
    if s["truth"]:
        blocks += truth_blocks(s["truth"])
    blocks += detection_blocks(s["detection"], note=(
        "`det` = detector trained on all compressions (run `det_all`), `fstmatching` = FST-Matching trained "
        "alike, `det_raw` = the raw-trained detector analysed in H1/H3. Each compression's numbers include the "
        "reals of that compression."))
    blocks += [
        ("h", 2, "Reproduce"),
        ("p", f"`fstmatch demo --out DIR --preset {s['preset']}` (no data, no network, no GPU). The same analysis "
              "on real FaceForensics++: see `docs/hypotheses.md`."),
    ]
    return blocks


def write_demo_report(out: Path, summary: dict[str, Any]) -> tuple[Path, Path]:
    return write_report(out, demo_blocks(summary), title=f"fstmatch demo ({summary['preset']})")


def _map_error_text(sh: dict) -> str:
    """The maps' estimator error (median predicted relative L2 error per map set), as a sentence part."""
    errors = sh.get("map_relative_error") or {}
    raw = {k.split("__")[0]: v for k, v in errors.items() if k.endswith("__raw") and math.isfinite(v)}
    if not raw:
        return ""
    parts = ", ".join(f"{role} {value:.2f}" for role, value in sorted(raw.items()))
    return (f"the maps' estimator error (median over raw maps of sqrt(Σ stderr²) / ‖φ‖, the relative L2 "
            f"error the estimator predicts for a map): {parts}; ")
