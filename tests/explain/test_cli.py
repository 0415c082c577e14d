"""``fstmatch explain`` on a hand-made manifest of three faces and a tiny detector / encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fstmatch.cli import main
from fstmatch.cli.explain import resolve_target_kind
from fstmatch.errors import UserError


@pytest.fixture
def manifest(crop_manifest) -> Path:
    return crop_manifest([("real", "003", 0, 3, 3), ("Deepfakes", "003_017", 1, 3, 17), ("Deepfakes", "005_009", 1, 5, 9)])


def _save(tmp_path: Path, name: str, **kw) -> Path:
    from fstmatch.models import create_model, save_model

    torch.manual_seed(0)
    return save_model(create_model(name, width=8, **kw), tmp_path / name / "model.safetensors")


def _args(ckpt: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["explain", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--canvas", "32",
            "--grid", "4", "--budget", "2", "--no-progress", *extra]


def test_explain_writes_maps_and_overlays_then_resumes(tmp_path: Path, manifest: Path, capsys) -> None:
    ckpt = _save(tmp_path, "det")
    out = tmp_path / "maps"
    assert main(_args(ckpt, manifest, out)) == 0
    files = sorted(p.name for p in out.glob("*.npz"))
    assert files == ["Deepfakes__c23__003_017__0000.npz", "Deepfakes__c23__005_009__0000.npz",
                     "real__c23__003__0000.npz"]
    assert len(list(out.glob("*.png"))) == 3
    with np.load(out / files[0]) as z:
        assert z["values"].shape == (4, 4) and z["stderr"].shape == (4, 4)
        assert int(z["n_forward"]) == 2 + 2 * 15
        assert (int(z["label"]), int(z["source"]), int(z["target"])) == (1, 3, 17)
        assert str(z["id"]) == "Deepfakes/c23/003_017/0000" and str(z["target_kind"]) == "det"
        assert int(z["explained_class"]) == 1
        assert np.isfinite(z["values"]).all() and np.abs(z["values"]).sum() > 0
    assert json.loads((out / "explain.json").read_text())["grid"] == 4
    # resume: one map removed -> only that one is redone
    stamp = (out / files[1]).stat().st_mtime_ns
    (out / files[0]).unlink()
    capsys.readouterr()
    assert main(_args(ckpt, manifest, out)) == 0
    assert "2 already done, 1 to explain" in capsys.readouterr().out
    assert (out / files[0]).exists() and (out / files[1]).stat().st_mtime_ns == stamp
    # other settings into the same folder are refused
    assert main(_args(ckpt, manifest, out, "--baseline", "mean")) == 2
    assert "baseline differ" in capsys.readouterr().err


def test_explain_follows_the_model_role(tmp_path: Path, manifest: Path) -> None:
    ckpt = _save(tmp_path, "target", num_identities=20)
    out = tmp_path / "maps"
    assert main(_args(ckpt, manifest, out, "--manipulations", "Deepfakes", "--limit", "1", "--no-overlay")) == 0
    (npz,) = out.glob("*.npz")
    with np.load(npz) as z:
        assert str(z["target_kind"]) == "target" and int(z["explained_class"]) == 17
    assert not list(out.glob("*.png"))


def test_resolve_target_kind() -> None:
    assert resolve_target_kind("auto", {"name": "fstmatching"}) == "det"
    assert resolve_target_kind("auto", {"name": "source"}) == "source"
    assert resolve_target_kind("auto", {"name": "resnet18", "kwargs": {"num_classes": 2}}) == "det"
    assert resolve_target_kind("target", {"name": "det"}) == "target"
    with pytest.raises(UserError, match="--target-kind"):
        resolve_target_kind("auto", {"name": "resnet18", "kwargs": {"num_classes": 10}})


def test_grid_must_divide_the_canvas(tmp_path: Path, manifest: Path, capsys) -> None:
    ckpt = _save(tmp_path, "det")
    assert main(_args(ckpt, manifest, tmp_path / "maps", "--grid", "5")) == 2
    assert "does not divide" in capsys.readouterr().err


def test_cli_method_choices_match_the_engine() -> None:
    from fstmatch.cli import explain as cli_explain
    from fstmatch.explain import _core

    assert cli_explain.ESTIMATORS == _core.ESTIMATORS
    assert cli_explain.DEFAULT_ESTIMATOR == _core.DEFAULT_ESTIMATOR


def test_explain_methods_and_no_antithetic(tmp_path: Path, manifest: Path, capsys) -> None:
    ckpt = _save(tmp_path, "det")
    out = tmp_path / "plain"  # --no-antithetic alone means the plain walk
    assert main(_args(ckpt, manifest, out, "--no-antithetic", "--limit", "1", "--no-overlay")) == 0
    assert json.loads((out / "explain.json").read_text())["estimator"] == "permutation"
    out = tmp_path / "lev"
    assert main(_args(ckpt, manifest, out, "--estimator", "leverage", "--limit", "1", "--no-overlay",
                      "--budget", "8")) == 0
    (npz,) = out.glob("*.npz")
    with np.load(npz) as z:
        assert int(z["n_forward"]) == 2 + 8 * 15 and np.isfinite(z["values"]).all()
    # only the walk runs without antithetic pairs: a clear error, exit 2
    assert main(_args(ckpt, manifest, tmp_path / "x", "--estimator", "spline", "--no-antithetic")) == 2
    assert "antithetic=False" in capsys.readouterr().err


@pytest.mark.parametrize(("old", "new"), [("--method", "--estimator"), ("--methods", "--manipulations"),
                                          ("--permutations", "--budget")])
def test_renamed_options_are_errors_naming_the_new(tmp_path: Path, manifest: Path, capsys, old, new) -> None:
    with pytest.raises(SystemExit) as e:
        main(["explain", "--checkpoint", "x", "--data", str(manifest), "--out", str(tmp_path), old, "spline"])
    assert e.value.code == 2
    assert f"{old} was renamed {new}" in capsys.readouterr().err


def test_explain_manipulations_filter(tmp_path: Path, manifest: Path) -> None:
    ckpt = _save(tmp_path, "det")
    out = tmp_path / "real"
    assert main(_args(ckpt, manifest, out, "--manipulations", "real", "--no-overlay")) == 0
    assert [p.name for p in out.glob("*.npz")] == ["real__c23__003__0000.npz"]


def test_the_removed_auto_estimator_names_spline(tmp_path: Path, manifest: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["explain", "--checkpoint", "x", "--data", str(manifest), "--out", str(tmp_path), "--estimator", "auto"])
    assert "'auto' was removed" in capsys.readouterr().err
