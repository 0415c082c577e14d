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
from fstmatch.explain.mapfile import read_maps


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
    m = read_maps(out / files[0])
    assert m.values.shape == (1, 4, 4) and m.stderr is not None and m.stderr.shape == (1, 4, 4)
    assert m.n_forward.tolist() == [2 + 2 * 15]
    assert m.ids == ["Deepfakes/c23/003_017/0000"] and m.meta["target_kind"] == "det" and m.target.tolist() == [1]
    assert {k: m.info[0][k] for k in ("label", "source", "target", "method", "compression")} == \
        {"label": 1, "source": 3, "target": 17, "method": "Deepfakes", "compression": "c23"}
    assert np.isfinite(m.values).all() and np.abs(m.values).sum() > 0
    assert (m.explainer, m.estimator, m.budget, m.meta["model"]) == ("shapley", "spline", 2, "det")
    assert m.geometry == {"convention": "fstmatch", "canvas": 32, "face_width": None, "scale": 0.9}
    # the explained face itself, as the model saw it, and the model's numbers on it
    from fstmatch.data import Geometry, load_face, read_manifest
    from fstmatch.explain.mapfile import image_digest
    from fstmatch.models import load_model

    row = next(r for r in read_manifest(manifest) if r["id"] == m.ids[0])
    face, _ = load_face(row, manifest.parent, geometry=Geometry(canvas=32))
    assert m.image is not None and np.array_equal(m.image[0], face)
    x = torch.from_numpy(face).permute(2, 0, 1).float()[None] / 255
    assert m.digest == [image_digest(x[0])]
    with torch.no_grad():
        logits = load_model(ckpt).eval()(x)[0]
    assert m.metrics["logit"][0] == pytest.approx(float(logits[1]), abs=1e-5)
    assert m.metrics["score"][0] == pytest.approx(float(logits.softmax(0)[1]), abs=1e-6)
    assert m.v_full[0] == pytest.approx(float(logits[1]), abs=1e-4)  # v(full): the explained logit
    assert json.loads((out / "explain.json").read_text())["grid"] == 4
    # resume: one map removed -> only that one is redone
    stamp = (out / files[1]).stat().st_mtime_ns
    (out / files[0]).unlink()
    capsys.readouterr()
    assert main(_args(ckpt, manifest, out)) == 0
    assert "2 already done, 1 to explain" in capsys.readouterr().out
    assert (out / files[0]).exists() and (out / files[1]).stat().st_mtime_ns == stamp
    # a map file of the older format (format 1) is redone
    np.savez(out / files[2], values=np.zeros((4, 4)), id=np.str_("real/c23/003/0000"))
    capsys.readouterr()
    assert main(_args(ckpt, manifest, out)) == 0
    assert "2 already done, 1 to explain" in capsys.readouterr().out and read_maps(out / files[2]).ids == ["real/c23/003/0000"]
    # other settings into the same folder are refused
    assert main(_args(ckpt, manifest, out, "--baseline", "mean")) == 2
    assert "baseline differ" in capsys.readouterr().err


def test_explain_follows_the_model_role(tmp_path: Path, manifest: Path) -> None:
    ckpt = _save(tmp_path, "target", num_identities=20)
    out = tmp_path / "maps"
    assert main(_args(ckpt, manifest, out, "--manipulations", "Deepfakes", "--limit", "1", "--no-overlay")) == 0
    (npz,) = out.glob("*.npz")
    m = read_maps(npz)
    assert m.meta["target_kind"] == "target" and m.target.tolist() == [17]
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
    m = read_maps(npz)
    assert m.n_forward.tolist() == [2 + 8 * 15] and np.isfinite(m.values).all() and m.budget == 8
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


def test_cli_explainer_choices_match_the_registry() -> None:
    from fstmatch.cli.explain import EXPLAINERS
    from fstmatch.explain.attribution import list_explainers

    assert list(EXPLAINERS) == list_explainers()


@pytest.mark.parametrize("explainer", ["gradcam", "ig", "occlusion"])
def test_other_explainers_write_the_map_format_that_browse_reads(tmp_path: Path, manifest: Path,
                                                                explainer: str) -> None:
    from fstmatch.browse import write_explorer
    from fstmatch.explain.attribution import attribute
    from fstmatch.explain.mapfile import read_maps
    from fstmatch.models import load_model

    ckpt = _save(tmp_path, "det")
    out = tmp_path / explainer
    assert main(_args(ckpt, manifest, out, "--explainer", explainer, "--no-overlay")) == 0
    files = sorted(out.glob("*.npz"))
    assert len(files) == 3
    m = read_maps(files[1])
    assert m.explainer == explainer and m.estimator is None and m.budget is None
    assert m.values.shape == (1, 4, 4) and m.pixels.shape == (1, 32, 32) and m.image.shape == (1, 32, 32, 3)
    # the cells are the pixel map summed over each 8 x 8 cell, and the map is the library's
    np.testing.assert_allclose(m.values[0], m.pixels[0].reshape(4, 8, 4, 8).sum(axis=(1, 3)), rtol=1e-4, atol=1e-6)
    import torch

    image = torch.from_numpy(m.image[:1]).permute(0, 3, 1, 2).float() / 255
    again = attribute(explainer, load_model(ckpt).eval(), image, torch.from_numpy(m.target), grid=4)
    np.testing.assert_allclose(m.pixels[0], again.pixels[0].numpy(), rtol=1e-3, atol=1e-5)
    assert write_explorer(out).name == "index.html" and write_explorer(out).is_file()  # browse: no model loaded


def test_layer_is_for_grad_cam_only(tmp_path: Path, manifest: Path, capsys) -> None:
    ckpt = _save(tmp_path, "det")
    assert main(_args(ckpt, manifest, tmp_path / "x", "--explainer", "ig", "--layer", "layer1")) == 2
    assert "--layer applies to Grad-CAM only" in capsys.readouterr().err
