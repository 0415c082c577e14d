"""A multi-seed study's aggregate and report, from hand-made per-seed summaries (no training)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fstmatch.cli import main
from fstmatch.config import load_config
from fstmatch.hypotheses.stats import CONTRADICTED, HELD, NOT_SUPPORTED
from fstmatch.hypotheses.study import aggregate
from fstmatch.pipeline.demo import DemoConfig
from fstmatch.pipeline.study import build_study_summary
from fstmatch.report import to_html, to_markdown
from fstmatch.report.study import format_study, study_blocks

T2 = 4.302652729911275  # t_{0.975}, 2 degrees of freedom
METHODS = ("Deepfakes", "FaceSwap")


def _seed(q: tuple[float, float], diff: tuple[float, float], delta: tuple[float, float, float],
          auc: tuple[float, float], lift: float) -> dict:
    """One seed's summary with the fields the aggregate reads. ``delta``: source, target, det."""
    d = dict(zip(("source", "target", "det"), delta))
    corrected = {r: v / 0.9 for r, v in d.items()}
    det = {c: {"auc": auc[1], "auc_se": 0.05} for c in ("raw", "c23", "c40")}
    fst = {c: {"auc": auc[0], "auc_se": 0.05} for c in ("raw", "c23", "c40")}
    return {
        "machine": "x86_64, 2 CPU threads",
        "data": {"videos": 10, "identities": 4, "frames": 80, "methods": list(METHODS)},
        "images": {"total": 4, "per_method": {m: 2 for m in METHODS}},
        "shapley": {"grid": 8, "budget": 8, "estimator": "spline", "n_forward": {"det__raw": 10}},
        "h1": {"Q": dict(zip(METHODS, q)), "sem": {m: 0.001 for m in METHODS}, "holds": min(q) > 0},
        "h2": {"diff": dict(zip(METHODS, diff)), "diff_sem": {m: 0.002 for m in METHODS},
               "Q_paired": dict(zip(METHODS, q)), "Q_unpaired": {m: 0.0 for m in METHODS},
               "sem_paired": {m: 0.001 for m in METHODS}, "sem_unpaired": {m: 0.001 for m in METHODS},
               "above_at": {m: 8 if x > 0 else 0 for m, x in zip(METHODS, diff)}, "holds": min(diff) > 0},
        "h3": {"delta": d, "sem": {r: 0.01 for r in d}, "reproducibility": {r: 0.9 for r in d},
               "delta_corrected": corrected,
               "gap": {r: d[r] - d["det"] for r in ("source", "target")},
               "gap_sem": {r: 0.005 for r in ("source", "target")},
               "gap_corrected": {r: corrected[r] - corrected["det"] for r in ("source", "target")},
               "holds": d["det"] < min(d["source"], d["target"]),
               "holds_corrected": corrected["det"] < min(corrected["source"], corrected["target"])},
        "fstmatching_vs_det_c40": {"fstmatching_auc": auc[0], "det_auc": auc[1], "difference": auc[0] - auc[1],
                                   "stderr": math.hypot(0.05, 0.05)},
        "detection": {"det": det, "fstmatching": fst},
        "truth": {"det": {"region": "trace", "lift": lift}},
        "training": {}, "seconds": {"verify": 1.0},
    }


PER_SEED = {
    0: _seed((0.010, -0.010), (0.004, 0.002), (0.80, 0.70, 0.60), (0.70, 0.60), 1.30),
    1: _seed((0.012, -0.012), (-0.004, 0.003), (0.82, 0.72, 0.61), (0.60, 0.70), 1.25),
    2: _seed((0.011, -0.011), (0.001, 0.004), (0.81, 0.74, 0.62), (0.65, 0.65), 1.35),
}


def test_aggregate_by_hand() -> None:
    a = aggregate(PER_SEED)
    assert a["seeds"] == [0, 1, 2] and "held" in a["rule"]
    # H1: Deepfakes 0.010, 0.012, 0.011 -> mean 0.011, SD 0.001, interval 0.011 ± T2 * 0.001 / sqrt(3) > 0
    df = a["h1"]["Q"]["Deepfakes"]
    assert df["mean"] == pytest.approx(0.011) and df["sd"] == pytest.approx(0.001)
    assert df["low"] == pytest.approx(0.011 - T2 * 0.001 / math.sqrt(3)) and df["verdict"] == HELD
    assert df["within_sem"] == pytest.approx(0.001) and df["excess_sd"] == pytest.approx(0.0)
    assert df["held_fraction"] == 1.0
    assert a["h1"]["Q"]["FaceSwap"]["verdict"] == CONTRADICTED
    assert a["h1"]["verdict"] == CONTRADICTED and a["h1"]["held_fraction"] == 0.0
    # H2: Deepfakes 0.004, -0.004, 0.001 straddles 0 -> not supported; FaceSwap 0.002..0.004 held
    assert a["h2"]["diff"]["Deepfakes"]["verdict"] == NOT_SUPPORTED
    assert a["h2"]["diff"]["Deepfakes"]["held_fraction"] == pytest.approx(2 / 3)
    assert a["h2"]["diff"]["FaceSwap"]["verdict"] == HELD
    assert a["h2"]["verdict"] == NOT_SUPPORTED and a["h2"]["held_fraction"] == pytest.approx(2 / 3)
    # H3: gaps source 0.20, 0.21, 0.19 and target 0.10, 0.11, 0.12 -> held, also net of noise
    assert a["h3"]["gap"]["source"]["mean"] == pytest.approx(0.20)
    assert a["h3"]["gap"]["target"]["within_sem"] == pytest.approx(0.005)
    assert a["h3"]["verdict"] == HELD and a["h3"]["verdict_corrected"] == HELD
    assert a["h3"]["gap_corrected"]["source"]["mean"] == pytest.approx(0.20 / 0.9)
    # detection: 0.10, -0.10, 0.00 -> mean 0, SD 0.1
    fd = a["fstmatching_vs_det_c40"]
    assert fd["difference"]["mean"] == pytest.approx(0.0, abs=1e-12) and fd["difference"]["sd"] == pytest.approx(0.1)
    assert fd["difference"]["within_sem"] == pytest.approx(math.hypot(0.05, 0.05))
    assert fd["verdict"] == NOT_SUPPORTED and fd["difference"]["held_fraction"] == pytest.approx(1 / 3)
    assert a["detection"]["det"]["c40"]["auc"]["mean"] == pytest.approx(0.65)
    # truth: lift 1.30, 1.25, 1.35 -> interval above 1
    assert a["truth"]["det"]["lift"]["mean"] == pytest.approx(1.30) and a["truth"]["det"]["lift"]["verdict"] == HELD


def test_aggregate_of_verify_summaries_without_detection() -> None:
    per = {k: {key: v for key, v in s.items() if key not in ("detection", "fstmatching_vs_det_c40")}
           for k, s in PER_SEED.items()}
    a = aggregate(per)
    assert "fstmatching_vs_det_c40" not in a and a["detection"] == {}
    assert a["h3"]["verdict"] == HELD and a["h1"]["verdict"] == CONTRADICTED
    assert "difference" not in format_study({"seeds": [0, 1, 2], "aggregate": a})


def test_aggregate_needs_two_seeds() -> None:
    with pytest.raises(ValueError, match="two seeds"):
        aggregate({0: PER_SEED[0]})


def test_study_report_states_verdicts_and_rule(tmp_path: Path) -> None:
    cfg = load_config(DemoConfig, kind="demo", preset="tiny")
    summary = build_study_summary(cfg, "tiny", PER_SEED, {"synth": 1.0, "seed-0/verify": 2.0}, 3.0)
    assert summary["seeds"] == [0, 1, 2] and set(summary["per_seed"]) == {"0", "1", "2"}
    assert summary["aggregate"]["h1"]["Q"]["Deepfakes"]["verdict"] == HELD
    md = to_markdown(study_blocks(summary))
    for text in ("study over 3 training seeds", "Verdicts", "**contradicted**", "Rule.", "95 % interval (t)",
                 "SD beyond the SEM", "FST-Matching − det, c40", "seed 2", "seed-1/report.html"):
        assert text in md, text
    assert to_html(study_blocks(summary), tmp_path, "t").startswith("<!DOCTYPE html>")
    text = format_study(summary)
    assert "CONTRADICTED" in text and "Deepfakes" in text and "difference" in text


@pytest.mark.parametrize("args, message", [
    (["--seeds", "3"], "at least two distinct"),
    (["--seeds", "1", "1"], "at least two distinct"),
    (["--seeds", "0", "-2"], "seeds must be >= 0"),
    (["--seeds", "0", "1", "--jobs", "-1"], "jobs must be >= 0"),
    (["--seeds", "0", "1", "--set", "train.seed=4"], "train.seed and seeds"),
])
def test_demo_rejects_bad_seeds_before_any_work(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    assert main(["demo", "--out", str(tmp_path / "d"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
