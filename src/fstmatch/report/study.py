"""The report of a multi-seed study (``report.md``, ``report.html``, and the console summary) from
its ``summary.json`` (:func:`fstmatch.pipeline.study.build_study_summary`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fstmatch.hypotheses.study import CLAIMS
from fstmatch.report import write_report
from fstmatch.report.content import num
from fstmatch.report.render import Block


def _interval(a: Mapping[str, Any]) -> str:
    return f"[{num(a['low'])}, {num(a['high'])}]"


def _frac(f: float | None) -> str:
    return "–" if f is None else f"{f:.0%}"


def _row(what: str, a: Mapping[str, Any], judged: bool = True) -> list[Any]:
    """One quantity's aggregate; ``judged=False`` for rows shown for reference (not a claim's sign)."""
    return [what, num(a["mean"]), num(a["se"]), _interval(a), num(a.get("mde")), num(a["sd"]),
            num(a.get("within_sem")), num(a.get("excess_sd")), _frac(a.get("held_fraction")),
            f"**{a['verdict']}**" if judged else "–"]


HEADER = ["quantity", "mean over seeds", "between-seed SE", "95 % interval (t)", "detectable effect (80 % power)",
          "between-seed SD", "within-seed SEM (rms)", "SD beyond the SEM", "seeds where it holds", "verdict"]


def _mde_range(members: Mapping[str, Any]) -> str:
    """The members' minimum detectable effects, as 'X' or 'X–Y' (the claim's units)."""
    values = [m.get("mde") for m in members.values() if m.get("mde") is not None and m.get("mde") == m.get("mde")]
    if not values:
        return "–"
    lo, hi = min(values), max(values)
    return num(lo) if num(lo) == num(hi) else f"{num(lo)}–{num(hi)}"


def _accuracy_rows(per: Mapping[str, Any]) -> list[tuple[str, Callable[[Mapping[str, Any]], Any]]]:
    """Per-seed rows of every model's own accuracy: the verdicts rest on models that detect."""
    def auc(key: str, comp: str) -> Callable[[Mapping[str, Any]], Any]:
        return lambda x: x.get("detection", {}).get(key, {}).get(comp, {}).get("auc")

    def held_out(run: str, metric: str) -> Callable[[Mapping[str, Any]], Any]:
        return lambda x: x.get("training", {}).get(run, {}).get("validation", {}).get(metric)

    first = next(iter(per.values()))
    rows: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = []
    for key, comps in first.get("detection", {}).items():
        rows += [(f"test frame AUC, {key}, {c}", auc(key, c)) for c in comps]
    rows += [("raw − c40, det (all compressions)",
              lambda x: (auc("det", "raw")(x) or float("nan")) - (auc("det", "c40")(x) or float("nan")))]
    rows += [(f"held-out-frame identity accuracy, {r}", held_out(r, "identity_acc")) for r in ("source", "target")]
    rows += [(f"held-out-frame AUC, {r}", held_out(r, "auc")) for r in ("det", "det_paired", "det_unpaired")]
    return rows


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
        [CLAIMS["h1"], f"**{h1['verdict']}**", _mde_range(h1["Q"]), _frac(h1["held_fraction"])],
        [CLAIMS["h2"], f"**{h2['verdict']}**", _mde_range(h2["diff"]),
         _frac(h2["held_fraction"]) + " (curve above at every threshold)"],
        [CLAIMS["h3"], f"**{h3['verdict']}**", _mde_range(h3["gap"]), _frac(h3["held_fraction"])],
        [CLAIMS["h3_corrected"], f"**{h3['verdict_corrected']}**", _mde_range(h3["gap_corrected"]),
         _frac(h3["held_fraction_corrected"])],
        [CLAIMS["detection"], f"**{fd['verdict']}**", _mde_range({"d": fd["difference"]}),
         _frac(fd["difference"]["held_fraction"])],
    ]
    data_text = (f"Every seed made its own FST-Synth data (synth seed = the training seed; shown: seed {seeds[0]}'s "
                 f"{d['videos']} videos, {d['identities']} identities, {d['frames']} face crops) and trained every "
                 f"model (7 runs) on it, so the between-seed spread includes the data's"
                 if s["config"].get("data_per_seed") else
                 f"The data (FST-Synth, seed {s['config']['seed']}: {d['videos']} videos, {d['identities']} "
                 f"identities, {d['frames']} face crops) was generated and prepared once; every model (7 runs) was "
                 f"trained once per training seed ({', '.join(map(str, seeds))})")
    blocks: list[Block] = [
        ("h", 1, f"FST-Matching on FST-Synth — study over {len(seeds)} training seeds ({s['preset']} preset)"),
        ("p", f"Run on {s['date']}, {s['machine']}. {data_text}; H1–H3 and the detection comparison were "
              f"measured per seed on {im['total']} analysed frames (grid {sh['grid']}×{sh['grid']}, "
              f"{sh['budget']} orderings' worth of forwards per map, estimator {sh['estimator']}). Method: docs/method.md. Each seed's full report "
              "(figures, every table) is `seed-<k>/report.html`; the models' own accuracy per seed is in "
              "\"Models per seed\" below."),
        ("h", 2, "Verdicts"),
        ("table", ["claim", "verdict over seeds", "detectable effect at 80 % power (per member)",
                   "seeds on which it held (that seed's own rule)"], verdicts),
        ("p", "Rule. " + a["rule"]),
        ("p", "**Detectable effect**: the smallest true mean that this many seeds detect with 80 % probability "
              "(two-sided t-test at 5 %, exact noncentral t, taking the between-seed SD as measured), in the "
              "quantity's own units. A claim that is *not supported* had no effect larger than that, as far as "
              "this study can tell; a smaller one may exist."),
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
        ("h", 2, "Models per seed"),
        ("p", "Each verdict explains these models: the detectors' test frame AUC per compression, the "
              "all-compression detector's raw − c40 drop, the encoders' identity accuracy and the analysed "
              "detectors' AUC on held-out frames of their training videos."),
        _per_seed_table(per, _accuracy_rows(per)),
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
        ("p", f"`fstmatch demo --out DIR --preset {s['preset']} --seeds {' '.join(map(str, seeds))}"
              f"{' --data-per-seed' if s['config'].get('data_per_seed') else ''}` (resumable per seed and per "
              "stage; rerunning skips finished stages)."),
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
        lines += [f"      {m:<16} {num(v['mean'])} {_interval(v)}  detectable ±{num(v.get('mde'))}"
                  for m, v in block[field].items()]
    lines.append(f"  {CLAIMS['h3_corrected']}: {a['h3']['verdict_corrected'].upper()}")
    if "fstmatching_vs_det_c40" in a:
        fd = a["fstmatching_vs_det_c40"]["difference"]
        lines.append(f"  {CLAIMS['detection']}: {a['fstmatching_vs_det_c40']['verdict'].upper()}  "
                     f"difference {num(fd['mean'])} {_interval(fd)}")
    return "\n".join(lines)
