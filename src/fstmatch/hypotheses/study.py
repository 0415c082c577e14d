"""A multi-seed study (``fstmatch demo --seeds 0 1 2``): every claim judged across training seeds.

:func:`aggregate` turns the per-seed summaries (those of :func:`fstmatch.hypotheses.demo_report.build_summary`)
into ``summary["aggregate"]``, keyed like the single-seed summary: ``aggregate.h1.Q[method]``,
``aggregate.h2.diff[method]``, ``aggregate.h3.delta[model]``, ``aggregate.h3.gap[model]``,
``aggregate.fstmatching_vs_det_c40.difference``, ``aggregate.truth[model].lift``,
``aggregate.detection[key][comp].auc``. Each is a :func:`fstmatch.hypotheses.stats.between_seeds`
record (mean, se, low, high, sd, within_sem, excess_sd, held_fraction, verdict), and each claim gets
one ``verdict`` by :data:`fstmatch.hypotheses.stats.VERDICT_RULE`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fstmatch.config import to_dict
from fstmatch.hypotheses.stats import VERDICT_RULE, all_of, between_seeds, sign_verdict
from fstmatch.report import write_report
from fstmatch.report.content import num
from fstmatch.report.render import Block

Summaries = Mapping[int, Mapping[str, Any]]

CLAIMS = {
    "h1": "H1: Q > 0 for every method (the detector relies on cells neither source- nor target-relevant)",
    "h2": "H2: paired detector's Q above the unpaired one's, for every method (mean over thresholds)",
    "h3": "H3: δ_det below δ_source and δ_target (artifact concepts move most under compression)",
    "h3_corrected": "H3 net of estimator noise: δ/reproducibility of det below source's and target's",
    "detection": "FST-Matching's c40 frame AUC above the detector trained alike",
}


def _across(per: Summaries, value: Callable[[Mapping[str, Any]], Any],
            sem: Callable[[Mapping[str, Any]], Any] | None = None,
            holds: Callable[[Mapping[str, Any]], Any] | None = None) -> dict[str, Any]:
    seeds = list(per)
    return between_seeds([value(per[k]) for k in seeds],
                         None if sem is None else [sem(per[k]) for k in seeds],
                         None if holds is None else [holds(per[k]) for k in seeds])


def _members(per: Summaries, key: str, field: str) -> list[str]:
    first = next(iter(per.values()))
    return list(first[key][field])


def _gap(s: Mapping[str, Any], role: str, corrected: bool = False) -> float | None:
    h3 = s["h3"]
    name = "gap_corrected" if corrected else "gap"
    if role in h3.get(name, {}):
        return h3[name][role]
    d = h3.get("delta_corrected" if corrected else "delta", {})  # summaries made before gap existed
    return None if d.get(role) is None or d.get("det") is None else d[role] - d["det"]


def _fraction(per: Summaries, flag: Callable[[Mapping[str, Any]], Any]) -> float | None:
    known = [bool(flag(s)) for s in per.values() if flag(s) is not None]
    return sum(known) / len(known) if known else None


def aggregate(per: Summaries) -> dict[str, Any]:
    """The ``aggregate`` block of a study's summary from the per-seed summaries (seed -> summary).

    Works on ``fstmatch verify`` summaries too (models trained per seed elsewhere): H1-H3 and the
    ground truth are aggregated, the detection parts only when present."""
    if len(per) < 2:
        raise ValueError("a study aggregates at least two seeds")
    out: dict[str, Any] = {"seeds": list(per), "rule": VERDICT_RULE}

    methods = _members(per, "h1", "Q")
    q = {m: _across(per, lambda s, m=m: s["h1"]["Q"][m], lambda s, m=m: s["h1"]["sem"][m],
                    lambda s, m=m: s["h1"]["Q"][m] > 0) for m in methods}
    out["h1"] = {"claim": CLAIMS["h1"], "Q": q, "verdict": all_of(a["verdict"] for a in q.values()),
                 "held_fraction": _fraction(per, lambda s: s["h1"]["holds"])}

    diff = {m: _across(per, lambda s, m=m: s["h2"]["diff"][m], lambda s, m=m: s["h2"]["diff_sem"][m],
                       lambda s, m=m: s["h2"]["diff"][m] > 0) for m in _members(per, "h2", "diff")}
    out["h2"] = {"claim": CLAIMS["h2"], "diff": diff, "verdict": all_of(a["verdict"] for a in diff.values()),
                 "held_fraction": _fraction(per, lambda s: s["h2"]["holds"]),
                 **{k: {m: _across(per, lambda s, m=m, k=k: s["h2"][k][m],
                                   lambda s, m=m, k=k: s["h2"][k.replace("Q_", "sem_")][m]) for m in diff}
                    for k in ("Q_paired", "Q_unpaired")}}

    models = _members(per, "h3", "delta")
    h3: dict[str, Any] = {"claim": CLAIMS["h3"], "claim_corrected": CLAIMS["h3_corrected"]}
    h3["delta"] = {r: _across(per, lambda s, r=r: s["h3"]["delta"][r], lambda s, r=r: s["h3"]["sem"][r])
                   for r in models}
    for key in ("reproducibility", "delta_corrected"):
        h3[key] = {r: _across(per, lambda s, r=r, key=key: s["h3"].get(key, {}).get(r)) for r in models}
    others = [r for r in models if r != "det"]
    h3["gap"] = {r: _across(per, lambda s, r=r: _gap(s, r), lambda s, r=r: s["h3"].get("gap_sem", {}).get(r),
                            lambda s, r=r: (_gap(s, r) or 0) > 0) for r in others}
    h3["gap_corrected"] = {r: _across(per, lambda s, r=r: _gap(s, r, True),
                                      holds=lambda s, r=r: (_gap(s, r, True) or 0) > 0) for r in others}
    h3["verdict"] = all_of(a["verdict"] for a in h3["gap"].values())
    h3["verdict_corrected"] = all_of(a["verdict"] for a in h3["gap_corrected"].values())
    h3["held_fraction"] = _fraction(per, lambda s: s["h3"]["holds"])
    h3["held_fraction_corrected"] = _fraction(per, lambda s: s["h3"].get("holds_corrected"))
    out["h3"] = h3

    first = next(iter(per.values()))
    if "fstmatching_vs_det_c40" in first:  # demo summaries; a verify summary has no detection
        fd = {k: _across(per, lambda s, k=k: s["fstmatching_vs_det_c40"][k]) for k in ("fstmatching_auc", "det_auc")}
        fd["difference"] = _across(per, lambda s: s["fstmatching_vs_det_c40"]["difference"],
                                   lambda s: s["fstmatching_vs_det_c40"]["stderr"],
                                   lambda s: (s["fstmatching_vs_det_c40"]["difference"] or 0) > 0)
        out["fstmatching_vs_det_c40"] = {"claim": CLAIMS["detection"], **fd, "verdict": fd["difference"]["verdict"]}
    out["detection"] = {key: {c: {"auc": _across(per, lambda s, key=key, c=c: s["detection"][key][c]["auc"],
                                                 lambda s, key=key, c=c: s["detection"][key][c].get("auc_se"))}
                              for c in comps} for key, comps in first.get("detection", {}).items()}
    out["truth"] = {}
    for role in first.get("truth", {}):
        lift = _across(per, lambda s, role=role: s["truth"][role]["lift"],
                       holds=lambda s, role=role: s["truth"][role]["lift"] > 1)
        lift["verdict"] = sign_verdict(lift["low"] - 1, lift["high"] - 1)  # the check: lift > 1
        out["truth"][role] = {"region": first["truth"][role]["region"], "lift": lift}
    return out


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


# --- the report -------------------------------------------------------------------------------------

def _interval(a: Mapping[str, Any]) -> str:
    return f"[{num(a['low'])}, {num(a['high'])}]"


def _frac(f: float | None) -> str:
    return "–" if f is None else f"{f:.0%}"


def _row(what: str, a: Mapping[str, Any], judged: bool = True) -> list[Any]:
    """One quantity's aggregate; ``judged=False`` for rows shown for reference (not a claim's sign)."""
    return [what, num(a["mean"]), num(a["se"]), _interval(a), num(a["sd"]), num(a.get("within_sem")),
            num(a.get("excess_sd")), _frac(a.get("held_fraction")), f"**{a['verdict']}**" if judged else "–"]


HEADER = ["quantity", "mean over seeds", "between-seed SE", "95 % interval (t)", "between-seed SD",
          "within-seed SEM (rms)", "SD beyond the SEM", "seeds where it holds", "verdict"]


def _per_seed_table(per: Mapping[str, Any], rows: list[tuple[str, Callable[[Mapping[str, Any]], Any]]]) -> Block:
    seeds = list(per)
    return ("table", ["quantity", *[f"seed {k}" for k in seeds]],
            [[name, *[_cell(get(per[k])) for k in seeds]] for name, get in rows])


def _cell(v: Any) -> str:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else num(v)


def study_blocks(s: Mapping[str, Any]) -> list[Block]:
    """The study report: verdicts, the aggregate per quantity, then the per-seed tables."""
    a, per, seeds = s["aggregate"], s["per_seed"], s["seeds"]
    h1, h2, h3, fd = a["h1"], a["h2"], a["h3"], a["fstmatching_vs_det_c40"]
    d, sh, im = s["data"], s["shapley"], s["images"]
    verdicts = [
        [CLAIMS["h1"], f"**{h1['verdict']}**", _frac(h1["held_fraction"])],
        [CLAIMS["h2"], f"**{h2['verdict']}**", _frac(h2["held_fraction"]) + " (curve above at every threshold)"],
        [CLAIMS["h3"], f"**{h3['verdict']}**", _frac(h3["held_fraction"])],
        [CLAIMS["h3_corrected"], f"**{h3['verdict_corrected']}**", _frac(h3["held_fraction_corrected"])],
        [CLAIMS["detection"], f"**{fd['verdict']}**", _frac(fd["difference"]["held_fraction"])],
    ]
    blocks: list[Block] = [
        ("h", 1, f"FST-Matching on FST-Synth — study over {len(seeds)} training seeds ({s['preset']} preset)"),
        ("p", f"Run on {s['date']}, {s['machine']}. The data (FST-Synth, seed {s['config']['seed']}: "
              f"{d['videos']} videos, {d['identities']} identities, {d['frames']} face crops) was generated and "
              f"prepared once; every model (7 runs) was trained once per training seed ({', '.join(map(str, seeds))}) "
              f"and H1–H3 and the detection comparison were measured per seed on the same {im['total']} analysed "
              f"frames (grid {sh['grid']}×{sh['grid']}, {sh['permutations']} orderings per map). Method: "
              "docs/method.md. Each seed's full report (figures, every table) is `seed-<k>/report.html`."),
        ("h", 2, "Verdicts"),
        ("table", ["claim", "verdict over seeds", "seeds on which it held (that seed's own rule)"], verdicts),
        ("p", "Rule. " + a["rule"]),
        ("p", "**between-seed SE** = SD over seeds / √n; the interval uses Student's t with n − 1 degrees of "
              "freedom (t₀.₉₇₅ = 12.7, 4.30, 3.18 for 2, 3, 4 seeds), so a few seeds give wide intervals. "
              "**within-seed SEM** is the standard error over the analysed images of each seed (Shapley estimator "
              "noise included), as root mean square over seeds; **SD beyond the SEM** = √max(SD² − SEM², 0) is "
              "the seed-to-seed variation that the per-image SEM does not contain — the part due to training "
              "the models again. The seeds share the analysed frames: the interval covers retraining and "
              "estimator noise for these frames, not the choice of frames (for that, compare the SEM column)."),
        ("h", 2, "H1: Q per method"),
        ("table", HEADER, [_row(m, v) for m, v in h1["Q"].items()]),
        ("h", 2, "H2: paired − unpaired Q per method"),
        ("table", HEADER, [_row(f"{m}: paired − unpaired", v) for m, v in h2["diff"].items()]
         + [_row(f"{m}: Q paired", h2["Q_paired"][m], False) for m in h2["diff"]]
         + [_row(f"{m}: Q unpaired", h2["Q_unpaired"][m], False) for m in h2["diff"]]),
        ("h", 2, "H3: stability δ under compression"),
        ("p", "The claim's margins are δ_model − δ_det (> 0 claimed), on the same frames; the second set is net "
              "of estimator noise (δ / reproducibility, docs/method.md §4). The δ and reproducibility rows are "
              "shown for reference."),
        ("table", HEADER, [_row(f"δ_{r} − δ_det", v) for r, v in h3["gap"].items()]
         + [_row(f"(δ/repro)_{r} − (δ/repro)_det", v) for r, v in h3["gap_corrected"].items()]
         + [_row(f"δ_{r}", v, False) for r, v in h3["delta"].items()]
         + [_row(f"reproducibility_{r}", v, False) for r, v in h3["reproducibility"].items()]),
        ("h", 2, "Detection: FST-Matching − det at c40 (frame AUC)"),
        ("p", "Per seed, the difference of the two test AUCs at c40; its within-seed SE combines the two "
              "Hanley–McNeil SEs. Both models are trained alike on all three compressions."),
        ("table", HEADER, [_row("FST-Matching − det, c40", fd["difference"])]
         + [_row(f"{k} AUC, {c}", v["auc"], False) for k, comps in a["detection"].items() for c, v in comps.items()]),
    ]
    if a.get("truth"):
        blocks += [
            ("h", 2, "Ground truth: lift of each model's map on its region"),
            ("p", "lift = share of the map's positive mass on the region / the region's area (1 = chance). "
                  "Verdict here: whether lift > 1 (the interval above 1)."),
            ("table", HEADER, [_row(f"{r} ({t['region']})", t["lift"]) for r, t in a["truth"].items()]),
        ]
    blocks += [
        ("h", 2, "Per seed"),
        ("p", "Each seed's own numbers (± SEM over images in its report, `seed-<k>/report.md`)."),
        _per_seed_table(per, [(f"H1 Q {m}", lambda x, m=m: x["h1"]["Q"][m]) for m in h1["Q"]]
                        + [(f"H1 SEM {m}", lambda x, m=m: x["h1"]["sem"][m]) for m in h1["Q"]]),
        _per_seed_table(per, [(f"H2 paired − unpaired {m}", lambda x, m=m: x["h2"]["diff"][m]) for m in h2["diff"]]
                        + [(f"H2 thresholds where paired > unpaired, {m}", lambda x, m=m: x["h2"]["above_at"][m])
                           for m in h2["diff"]]),
        _per_seed_table(per, [(f"H3 δ_{r}", lambda x, r=r: x["h3"]["delta"][r]) for r in h3["delta"]]
                        + [(f"H3 δ/repro {r}", lambda x, r=r: x["h3"].get("delta_corrected", {}).get(r))
                           for r in h3["delta"]]),
        _per_seed_table(per, [("c40 AUC FST-Matching", lambda x: x["fstmatching_vs_det_c40"]["fstmatching_auc"]),
                              ("c40 AUC det", lambda x: x["fstmatching_vs_det_c40"]["det_auc"]),
                              ("difference", lambda x: x["fstmatching_vs_det_c40"]["difference"]),
                              ("its SE (Hanley–McNeil)", lambda x: x["fstmatching_vs_det_c40"]["stderr"])]
                        + [(f"truth lift {r}", lambda x, r=r: x["truth"][r]["lift"]) for r in a.get("truth", {})]),
        ("ul", [f"seed {k}: `seed-{k}/report.html`, `seed-{k}/summary.json`" for k in seeds]),
        ("h", 2, "Time"),
        ("table", ["stage", "seconds"], [[k, f"{v:.0f}"] for k, v in s["seconds"].items()]),
        ("h", 2, "Reproduce"),
        ("p", f"`fstmatch demo --out DIR --preset {s['preset']} --seeds {' '.join(map(str, seeds))}` (resumable per "
              "seed and per stage; rerunning skips finished stages)."),
    ]
    return blocks


def write_study_report(out: Path, summary: Mapping[str, Any]) -> tuple[Path, Path]:
    return write_report(out, study_blocks(summary), title=f"fstmatch study ({summary['preset']}, "
                        f"{len(summary['seeds'])} seeds)")


def format_study(summary: Mapping[str, Any]) -> str:
    """Console digest: one line per claim with its verdict and interval."""
    a = summary["aggregate"]
    lines = [f"study over seeds {', '.join(map(str, summary['seeds']))} (mean [95 % interval]; verdict):"]
    for key, field in (("h1", "Q"), ("h2", "diff"), ("h3", "gap")):
        block = a[key]
        lines.append(f"  {CLAIMS[key]}: {block['verdict'].upper()}")
        lines += [f"      {m:<16} {num(v['mean'])} {_interval(v)}" for m, v in block[field].items()]
    lines.append(f"  {CLAIMS['h3_corrected']}: {a['h3']['verdict_corrected'].upper()}")
    if "fstmatching_vs_det_c40" in a:
        fd = a["fstmatching_vs_det_c40"]["difference"]
        lines.append(f"  {CLAIMS['detection']}: {a['fstmatching_vs_det_c40']['verdict'].upper()}  "
                     f"difference {num(fd['mean'])} {_interval(fd)}")
    return "\n".join(lines)
