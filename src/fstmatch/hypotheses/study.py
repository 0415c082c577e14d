"""Every claim judged across independently trained models (a multi-seed study's statistics).

:func:`aggregate` turns the per-seed summaries (those of :func:`fstmatch.pipeline.summary.build_summary`,
or of ``fstmatch verify``)
into ``summary["aggregate"]``, keyed like the single-seed summary: ``aggregate.h1.Q[method]``,
``aggregate.h2.diff[method]``, ``aggregate.h3.delta[model]``, ``aggregate.h3.gap[model]``,
``aggregate.fstmatching_vs_det_c40.difference``, ``aggregate.truth[model].lift``,
``aggregate.detection[key][comp].auc``. Each is a :func:`fstmatch.hypotheses.stats.between_seeds`
record (mean, se, low, high, sd, within_sem, excess_sd, held_fraction, verdict), and each claim gets
one ``verdict`` by :data:`fstmatch.hypotheses.stats.VERDICT_RULE`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fstmatch.hypotheses.stats import VERDICT_RULE, all_of, between_seeds, sign_verdict

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
