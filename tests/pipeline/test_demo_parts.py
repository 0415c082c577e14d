"""Fast checks of the demo's pieces: presets, the training protocol, stage skipping, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fstmatch.config import load_config
from fstmatch.errors import UserError
from fstmatch.hypotheses.protocol import RUNS, train_config
from fstmatch.pipeline.demo import DemoConfig, Stages, demo_train_config
from fstmatch.report import to_html, to_markdown
from fstmatch.report.demo import demo_blocks


@pytest.mark.parametrize("preset", ["laptop", "tiny"])
def test_presets_build_every_training_run(preset: str, tmp_path: Path) -> None:
    cfg = load_config(DemoConfig, kind="demo", preset=preset)
    runs = {name: demo_train_config(cfg, name, tmp_path / "manifest.jsonl") for name in RUNS}
    holdout = cfg.verify["images"]["holdout"]
    for name in ("source", "target", "det", "det_paired", "det_unpaired"):  # analysed: raw, held out
        assert runs[name].data.compressions == ("raw",) and runs[name].data.holdout == holdout
    for name in ("det_all", "fstmatching"):  # detection comparison: all compressions, alike
        assert runs[name].data.compressions is None and runs[name].data.holdout == 0
    assert runs["det_all"].epochs == runs["fstmatching"].epochs
    assert (runs["det_paired"].data.set_name, runs["det_unpaired"].data.set_name) == ("paired", "unpaired")
    assert {r.model.role for r in runs.values()} == {"source", "target", "det", "fstmatching"}
    assert cfg.verify["shapley"]["grid"] and runs["det"].input.canvas % cfg.verify["shapley"]["grid"] == 0


def test_protocol_rejects_unknown_runs_and_keys(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown run"):
        train_config("det_c40", tmp_path, {}, 1)
    with pytest.raises(UserError, match="unknown config key"):
        train_config("det", tmp_path, {"epoch": 3}, 1)
    cfg = train_config("det", tmp_path, {"epochs": 3}, 2, override={"epochs": 5}, seed=7)
    assert (cfg.epochs, cfg.seed, cfg.data.holdout, cfg.data.manifest) == (5, 7, 2, str(tmp_path))


def test_stages_skip_finished_work_and_redo_changed_settings(tmp_path: Path, capsys) -> None:
    calls = []
    marker = tmp_path / "made"

    def work() -> None:
        calls.append(1)
        marker.touch()

    Stages(tmp_path, 1).run("a", {"x": 1}, [marker], work)
    Stages(tmp_path, 1).run("a", {"x": 1}, [marker], work)  # same settings, output present: skipped
    assert len(calls) == 1 and "skipped" in capsys.readouterr().out
    Stages(tmp_path, 1).run("a", {"x": 2}, [marker], work)  # settings changed
    marker.unlink()
    Stages(tmp_path, 1).run("a", {"x": 2}, [marker], work)  # output gone
    assert len(calls) == 3
    assert set(json.loads((tmp_path / "demo_state.json").read_text())["a"]) == {"fingerprint", "seconds"}


def _summary() -> dict:
    methods = ["Deepfakes", "FaceSwap"]
    per = {m: 0.01 for m in methods}
    curve = {m: {"0.6": 0.01, "0.95": 0.02} for m in methods}
    det = {c: {"auc": 0.9, "video_auc": 0.95, "auc_se": 0.05} for c in ("raw", "c23", "c40")}
    return {
        "preset": "tiny", "date": "2026-11-25", "machine": "x86_64, 2 CPU threads",
        "data": {"videos": 10, "identities": 4, "methods": methods, "frames": 80, "frames_by_split": {"train": 80}},
        "shapley": {"grid": 8, "budget": 8, "estimator": "spline", "n_forward": {"det__raw": 1000},
                    "map_relative_error": {"det__raw": 0.31, "det__c40": 0.4, "source__raw": 0.2}},
        "images": {"total": 4, "per_method": {m: 2 for m in methods}},
        "training": {"det": {"compressions": ["raw"], "set": "all", "holdout": 1, "epochs": 2,
                             "validation": {"auc": 0.8}}},
        "seconds": {"synth": 3.0, "total": 10.0},
        "h1": {"Q": {"Deepfakes": 0.01, "FaceSwap": -0.01}, "sem": per, "noise": {m: None for m in methods},
               "n_images": {m: 2 for m in methods}, "claim": "Q > 0", "holds": False, "clear": False,
               "figure": "verify/h1_Q.png", "figures": {"Deepfakes": ["verify/h1/x.png"]}},
        "h2": {"Q_paired": per, "Q_unpaired": per, "sem_paired": per, "sem_unpaired": per, "diff": per,
               "diff_sem": per, "above_at": {m: 8 for m in methods}, "thresholds": 8, "claim": "paired above",
               "holds": True, "clear": False, "figure": "verify/h2_curves.png", "curve_paired": curve},
        "h3": {"delta": {"source": 0.9, "target": 0.8, "det": 0.5}, "sem": {"source": 0.1, "target": 0.1, "det": 0.1},
               "noise": {"source": 0.01, "target": 0.01, "det": 0.01}, "n_images": 4, "skipped": 0,
               "claim": "δ_det lowest", "holds": True, "figure": "verify/h3_delta.png"},
        "truth": {"det": {"region": "trace", "share": 0.3, "expected": 0.1, "lift": 3.0, "n": 4}},
        "detection": {"det": det, "fstmatching": det},
        "fstmatching_vs_det_c40": {"fstmatching_auc": 0.9, "det_auc": 0.9, "difference": 0.0, "stderr": 0.07},
    }


def test_demo_report_renders_every_section(tmp_path: Path) -> None:
    blocks = demo_blocks(_summary())
    md = to_markdown(blocks)
    for text in ("H1 (Q > 0 for every method): did NOT hold — Q ≤ 0 for FaceSwap", "Hypothesis 2",
                 "Hypothesis 3", "Ground truth", "Detection", "| det | 0.900 / 0.950 |", "FST-Matching is not better",
                 "(estimator `spline`)", "‖φ‖, the relative L2 error the estimator predicts for a map): det 0.31, source 0.20;"):
        assert text in md, text
    html = to_html(blocks, tmp_path, "t")
    assert "figure missing: verify/h1_Q.png" in html and "<b>did not hold</b> here" in html
    assert html.startswith("<!DOCTYPE html>") and "&lt;" not in html.split("<body>")[0]


def test_the_retired_small_demo_preset_names_its_successor() -> None:
    from fstmatch.errors import UserError

    with pytest.raises(UserError, match="replaced by 'laptop'"):
        load_config(DemoConfig, kind="demo", preset="small")
    with pytest.raises(UserError, match="choose from: laptop, tiny"):
        load_config(DemoConfig, kind="demo", preset="huge")
