"""The demo end to end (slow): every stage runs, every number is finite and in range, a rerun skips
everything. One test uses a test-size configuration (micro FST-Synth, one epoch, 4 orderings) and checks
resuming; the other runs the shipped tiny preset exactly as `make demo` does. Whether the paper's
claims hold is NOT asserted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fstmatch.cli import main

TEST_SIZE = [
    "synth.preset=micro", "prepare.frames_per_video=4", "train.epochs=1", "train.batch_size=8",
    "runs.det_all.epochs=1", "runs.fstmatching.epochs=1",
    "verify.images.per_method=2", "verify.shapley.budget=4", "verify.noise_draws=4",
]
STAGES = ["synth", "prepare", "train:source", "train:target", "train:det", "train:det_paired", "train:det_unpaired",
          "train:det_all", "train:fstmatching", "verify", "test:det", "test:fstmatching", "test:det_raw"]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _check_outputs(out: Path) -> None:
    """Every stage ran; every number is finite and in range (not whether the claims hold)."""
    state = json.loads((out / "demo_state.json").read_text())
    assert list(state) == STAGES  # the trainings run side by side, but the state lists them in order
    s = json.loads((out / "summary.json").read_text())
    methods = s["data"]["methods"]
    assert len(methods) == 5
    grid = s["shapley"]["grid"]
    for m in methods:
        assert _finite(s["h1"]["Q"][m]) and abs(s["h1"]["Q"][m]) <= 1 / grid
        assert _finite(s["h2"]["Q_paired"][m]) and _finite(s["h2"]["Q_unpaired"][m])
    for model in ("source", "target", "det"):
        assert -1 <= s["h3"]["delta"][model] <= 1
    for model in ("source", "target", "det", "det_paired", "det_unpaired", "fstmatching"):
        t = s["truth"][model]
        assert 0 <= t["share"] <= 1 and 0 < t["expected"] < 1 and t["lift"] >= 0
    for model in ("det", "fstmatching", "det_raw"):
        for comp in ("raw", "c23", "c40"):
            assert 0 <= s["detection"][model][comp]["auc"] <= 1
    assert all(_finite(v) and v >= 0 for v in s["seconds"].values())
    for name in ("report.md", "report.html", "verify/h1_Q.png", "verify/h2_curves.png", "verify/h3_delta.png"):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "figure missing" not in html
    md = (out / "report.md").read_text()
    assert "Hypothesis 1" in md and "Detection" in md and "Ground truth" in md


@pytest.mark.slow
def test_demo_end_to_end_and_resume(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--preset", "tiny", *[a for kv in TEST_SIZE for a in ("--set", kv)]]
    assert main(args) == 0
    _check_outputs(out)

    capsys.readouterr()
    assert main(args) == 0  # resume: every stage is skipped
    text = capsys.readouterr().out
    assert text.count("done earlier") == len(STAGES)


@pytest.mark.slow
def test_demo_tiny_preset_as_shipped(tmp_path: Path) -> None:
    """`make demo` exactly: the shipped tiny preset, no overrides (about 6-7 minutes on 2 cores)."""
    out = tmp_path / "demo-tiny"
    assert main(["demo", "--out", str(out), "--preset", "tiny"]) == 0
    _check_outputs(out)


@pytest.mark.slow
def test_demo_study_over_two_seeds_and_resume(tmp_path: Path, capsys) -> None:
    """`demo --seeds 0 1` at test size (about a minute): data once, every run per seed, an aggregate
    with one verdict per claim; a rerun skips every stage."""
    out = tmp_path / "study"
    args = ["demo", "--out", str(out), "--preset", "tiny", "--seeds", "0", "1",
            *[a for kv in TEST_SIZE for a in ("--set", kv)]]
    assert main(args) == 0
    state = json.loads((out / "demo_state.json").read_text())
    assert list(state) == ["synth", "prepare"]  # the shared data; each seed keeps its own state
    per_seed = [s for s in STAGES if s not in ("synth", "prepare")]
    for k in (0, 1):
        assert list(json.loads((out / f"seed-{k}" / "demo_state.json").read_text())) == per_seed
        assert "train:det" in (out / f"seed-{k}" / "demo.log").read_text()  # each seed's own log
    for k in (0, 1):
        _check_outputs_of_seed(out / f"seed-{k}")
    s = json.loads((out / "summary.json").read_text())
    assert s["seeds"] == [0, 1] and set(s["per_seed"]) == {"0", "1"}
    agg = s["aggregate"]
    verdicts = {agg["h1"]["verdict"], agg["h2"]["verdict"], agg["h3"]["verdict"], agg["h3"]["verdict_corrected"],
                agg["fstmatching_vs_det_c40"]["verdict"]}
    assert verdicts <= {"held", "not supported", "contradicted"}
    for m in s["data"]["methods"]:
        q = agg["h1"]["Q"][m]
        assert q["n"] == 2 and q["low"] <= q["mean"] <= q["high"]
        assert q["values"] == [s["per_seed"][k]["h1"]["Q"][m] for k in ("0", "1")]
    d = agg["fstmatching_vs_det_c40"]["difference"]
    assert _finite(d["mean"]) and _finite(d["se"])
    # the two seeds trained different models on the same data
    assert s["per_seed"]["0"]["h1"]["Q"] != s["per_seed"]["1"]["h1"]["Q"]
    md = (out / "report.md").read_text()
    assert "Verdicts" in md and "Rule." in md and "Per seed" in md

    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("done earlier") == 2  # the data; each seed says so in its log
    assert all((out / f"seed-{k}" / "demo.log").read_text().count("done earlier") == len(per_seed) for k in (0, 1))


def _check_outputs_of_seed(where: Path) -> None:
    s = json.loads((where / "summary.json").read_text())
    assert s["seed"] == int(where.name.split("-")[1])
    for name in ("report.md", "report.html", "verify/h1_Q.png", "runs/fstmatching/model.safetensors",
                 "explorer/index.html"):
        assert (where / name).is_file(), name
    assert all(0 <= s["detection"][k]["c40"]["auc"] <= 1 for k in ("det", "fstmatching", "det_raw"))


def _without_times(obj):
    """``obj`` less every wall time and date (the only numbers allowed to move between two runs) and
    the worker counts (which the two runs set differently)."""
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items()
                if not any(w in k for w in ("seconds", "date", "wall", "time", "workers"))}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


@pytest.mark.slow
def test_same_preset_and_seed_give_the_same_bytes(tmp_path: Path) -> None:
    """Two runs at test size, one with one synth/prepare worker, one with two: byte-identical videos
    at every compression, manifest and weights, and the same summary numbers (all but wall times)."""
    runs = []
    for workers in (1, 2):
        out = tmp_path / f"run-{workers}"
        assert main(["demo", "--out", str(out), "--preset", "tiny", *[a for kv in TEST_SIZE for a in ("--set", kv)],
                     "--set", f"synth.workers={workers}", "--set", f"prepare.workers={workers}"]) == 0
        runs.append(out)
    a, b = runs
    videos = sorted(p.relative_to(a) for p in (a / "data").rglob("*.mp4"))
    assert len(videos) == 3 * (8 + 5 * 8) and {p.parts[-3] for p in videos} == {"raw", "c23", "c40"}
    assert [p for p in videos if (a / p).read_bytes() != (b / p).read_bytes()] == []
    assert (a / "prep" / "manifest.jsonl").read_bytes() == (b / "prep" / "manifest.jsonl").read_bytes()
    weights = sorted(p.relative_to(a) for p in (a / "runs").rglob("model.safetensors"))
    assert len(weights) == 7
    assert [p for p in weights if (a / p).read_bytes() != (b / p).read_bytes()] == []
    # every number alike; paths differ only by the run folder
    sa, sb = (json.loads((r / "summary.json").read_text().replace(str(r), "RUN")) for r in runs)
    assert _without_times(sa) == _without_times(sb)


@pytest.mark.slow
def test_study_with_data_per_seed_makes_each_seed_its_own_data(tmp_path: Path) -> None:
    """`--data-per-seed`: FST-Synth with seed k in seed-<k>/data, nothing shared at the top, and the
    study report says the spread includes the data's."""
    out = tmp_path / "study"
    args = ["demo", "--out", str(out), "--preset", "tiny", "--seeds", "3", "4", "--data-per-seed",
            *[a for kv in TEST_SIZE for a in ("--set", kv)]]
    assert main(args) == 0
    assert not (out / "data").exists() and not (out / "prep").exists()  # nothing shared
    firsts = []
    for k in (3, 4):
        state = json.loads((out / f"seed-{k}" / "demo_state.json").read_text())
        assert list(state)[:2] == ["synth", "prepare"]
        assert json.loads((out / f"seed-{k}" / "data" / "synth.json").read_text())["seed"] == k
        firsts.append((out / f"seed-{k}" / "data" / "original_sequences" / "youtube" / "raw" / "videos" / "000.mp4")
                      .read_bytes())
    assert firsts[0] != firsts[1]  # different data per seed
    s = json.loads((out / "summary.json").read_text())
    assert s["config"]["data_per_seed"] is True and set(s["per_seed"]) == {"3", "4"}
    assert "includes the data's" in (out / "report.md").read_text()
