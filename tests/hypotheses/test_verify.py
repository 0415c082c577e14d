"""verify end to end on a toy manifest with tiny untrained models: every number present, finite and
in range; caching, skipping and error messages. (Whether the paper's claims hold is not tested.)"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from fstmatch.cli import main
from fstmatch.config import from_dict, merge
from fstmatch.errors import UserError
from fstmatch.hypotheses.config import VerifyConfig
from fstmatch.hypotheses.maps import counterparts, select_images
from fstmatch.hypotheses.verify import verify
from fstmatch.report import format_verify, hypothesis_blocks, write_report

GRID = 4


def _cfg(manifest: Path, checkpoints: dict[str, str], **kw) -> VerifyConfig:
    base = {
        "manifest": str(manifest), "checkpoints": checkpoints,
        "images": {"per_method": 4, "canvas": 32, "holdout": 1},
        "shapley": {"grid": GRID, "budget": 4, "batch_size": 64},
        "noise_draws": 8, "figures_per_method": 1, "device": "cpu",
    }
    return from_dict(VerifyConfig, merge(base, kw))


@pytest.fixture(scope="module")
def verified(toy_manifest: Path, toy_checkpoints: dict[str, str], tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("verify")
    return out, verify(_cfg(toy_manifest, toy_checkpoints), out, progress=False)


def test_select_images_takes_held_out_raw_fakes_spread_over_videos(toy_manifest: Path) -> None:
    from fstmatch.data import read_manifest
    from fstmatch.hypotheses.config import ImagesConfig

    rows = read_manifest(toy_manifest)
    chosen = select_images(rows, ImagesConfig(per_method=3, holdout=1))
    assert list(chosen) == ["Deepfakes", "FaceSwap"]
    for method, picked in chosen.items():
        assert len(picked) == 3 and len({r["video"] for r in picked}) == 3  # one frame per video first
        assert all(r["compression"] == "raw" and r["label"] == 1 and r["frame"] == 1 for r in picked)
        assert all(r["method"] == method for r in picked)
    triples, skipped = counterparts(rows, chosen["FaceSwap"])
    assert skipped == ["FaceSwap/raw/000_001/0001"]
    assert all(a["frame"] == b["frame"] == c["frame"] and (b["compression"], c["compression"]) == ("c23", "c40")
               for a, b, c in triples)
    with pytest.raises(UserError, match="NeuralTextures"):
        select_images(rows, ImagesConfig(methods=("NeuralTextures",)))


def test_summary_numbers_are_finite_and_in_range(verified) -> None:
    out, s = verified
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(s, default=float))
    bound = 1 / GRID  # |Q_t| = |±Σ φd| / G² <= sqrt(G²) / G² for a unit map
    for method in ("Deepfakes", "FaceSwap"):
        assert abs(s["h1"]["Q"][method]) <= bound
        assert s["h1"]["sem"][method] >= 0 and s["h1"]["noise"][method] >= 0
        assert len(s["h1"]["curve"][method]) == 8
        for key in ("Q_paired", "Q_unpaired", "diff"):
            assert math.isfinite(s["h2"][key][method]) and abs(s["h2"][key][method]) <= 2 * bound
        assert 0 <= s["h2"]["above_at"][method] <= 8
    assert set(s["h3"]["delta"]) == {"source", "target", "det"}
    assert all(-1 <= d <= 1 for d in s["h3"]["delta"].values())
    assert s["h3"]["skipped"] == 1 and s["h3"]["n_images"] == 7
    for model, d in s["h3"]["delta"].items():  # δ / reproducibility: the same ratio, recorded
        repro = s["h3"]["reproducibility"][model]
        assert -1 <= repro <= 1 and s["h3"]["delta_corrected"][model] == pytest.approx(d / repro)
    assert s["shapley"]["n_forward"]["det__raw_repeat"] == 7 * 62
    assert s["images"]["total"] == 8 and s["images"]["per_method"] == {"Deepfakes": 4, "FaceSwap": 4}
    for role, region in (("source", "rest"), ("target", "donor"), ("det", "trace"), ("det_paired", "trace")):
        t = s["truth"][role]
        assert t["region"] == region and 0 <= t["share"] <= 1 and 0 < t["expected"] < 1 and t["n"] + t["skipped"] == 8
    # 8 raw images x (2 + 4 orderings x (16 - 1)) forwards; c23/c40 maps cover the 7 complete frames
    assert s["shapley"]["n_forward"]["det__raw"] == 8 * 62
    assert s["shapley"]["n_forward"]["det__c40"] == 7 * 62
    # the maps' own estimator error, as the report states it: sqrt(sum se²) / ||phi||, median per map set
    errors = s["shapley"]["map_relative_error"]
    assert {"det__raw", "source__raw", "target__raw"} <= set(errors) and all(0 < e < 10 for e in errors.values())
    assert s["shapley"]["estimator"] == "spline"
    assert isinstance(s["h1"]["holds"], bool) and isinstance(s["h3"]["holds"], bool)
    assert s["models"]["det"]["name"] == "det"


def test_figures_are_written(verified) -> None:
    out, s = verified
    for name in ("h1_Q.png", "h2_curves.png", "h3_delta.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    example = out / s["h1"]["figures"]["Deepfakes"][0]
    assert example.is_file() and example.stat().st_size > 1000


def test_rerun_reuses_cached_maps(verified, toy_manifest, toy_checkpoints) -> None:
    out, s = verified
    cache = out / "maps" / "det__raw.npz"
    before = cache.stat().st_mtime_ns
    again = verify(_cfg(toy_manifest, toy_checkpoints), out, hypotheses=[1], progress=False)
    assert cache.stat().st_mtime_ns == before
    assert again["h1"]["Q"] == s["h1"]["Q"]
    assert "h2" in again and "h3" in again  # earlier hypotheses kept in the merged summary


def test_changed_settings_recompute_maps(toy_manifest, toy_checkpoints, tmp_path) -> None:
    cfg = _cfg(toy_manifest, toy_checkpoints, images={"per_method": 1})
    a = verify(cfg, tmp_path, hypotheses=[1], progress=False)
    b = verify(_cfg(toy_manifest, toy_checkpoints, images={"per_method": 1}, shapley={"seed": 1}), tmp_path,
               hypotheses=[1], progress=False)
    assert a["h1"]["Q"] != b["h1"]["Q"]


def test_missing_checkpoint_names_the_train_command(toy_manifest, toy_checkpoints, tmp_path) -> None:
    ckpts = {**toy_checkpoints, "det": str(tmp_path / "nowhere")}
    with pytest.raises(UserError, match=r"(?s)det not found.*fstmatch train .*--model det --compressions raw"):
        verify(_cfg(toy_manifest, ckpts), tmp_path / "out", hypotheses=[1], progress=False)
    with pytest.raises(UserError, match=r"checkpoints\.det_paired is not set"):
        verify(_cfg(toy_manifest, {**toy_checkpoints, "det_paired": None}), tmp_path / "o2", hypotheses=[2],
               progress=False)


def test_cli_verify(toy_manifest, toy_checkpoints, tmp_path, capsys) -> None:
    cfg = {"manifest": str(toy_manifest), "checkpoints": toy_checkpoints, "device": "cpu", "noise_draws": 4,
           "images": {"per_method": 2, "canvas": 32}, "shapley": {"grid": GRID, "budget": 2}}
    path = tmp_path / "verify.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc = main(["verify", "--hypothesis", "3", "--config", str(path), "--out", str(tmp_path / "v"), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "H3" in text and "H1" not in text
    s = json.loads((tmp_path / "v" / "summary.json").read_text())
    assert "h3" in s and "h1" not in s and (tmp_path / "v" / "report.html").is_file()
    rc = main(["verify", "--hypothesis", "1", "--config", str(path), "--out", str(tmp_path / "v2"),
               "--set", "checkpoints.source=/missing"])
    assert rc == 2 and "fstmatch train" in capsys.readouterr().err


def test_report_of_a_verify_summary(verified, tmp_path) -> None:
    out, s = verified
    md, page = write_report(out, hypothesis_blocks(s), title="t", name="test-report")
    text = md.read_text()
    assert "| method | Q |" in text and "Hypothesis 3" in text and "h1_Q.png" in text
    html = page.read_text()
    assert html.count("data:image/png;base64,") >= 3 and "<table>" in html
    digest = format_verify(s)
    assert "Deepfakes" in digest and "claim" in digest


def test_train_missing_trains_the_absent_model_with_the_protocol(toy_manifest, toy_checkpoints, tmp_path) -> None:
    from fstmatch.train import load_run_config

    cfg = _cfg(toy_manifest, {**toy_checkpoints, "det": None}, images={"per_method": 1}, train_missing=True,
               train={"max_steps": 2, "batch_size": 4, "eval_every": 0, "device": "cpu",
                      "model": {"width": 4}, "input": {"canvas": 32, "augment": False}})
    s = verify(cfg, tmp_path, hypotheses=[1], progress=False)
    run = tmp_path / "runs" / "det"
    assert (run / "model.safetensors").is_file() and s["models"]["det"]["checkpoint"] == str(run)
    tc = load_run_config(run)
    assert tc.model.role == "det" and tc.data.compressions == ("raw",) and tc.data.holdout == 1
    assert math.isfinite(s["h1"]["Q"]["Deepfakes"])


def test_retrained_checkpoint_invalidates_cached_maps(toy_manifest, toy_checkpoints, tmp_path) -> None:
    import shutil

    import torch

    from fstmatch.models import create_model, save_model

    ckpts = {**toy_checkpoints, "det": str(tmp_path / "det")}
    shutil.copytree(toy_checkpoints["det"], ckpts["det"])
    cfg = _cfg(toy_manifest, ckpts, images={"per_method": 1})
    a = verify(cfg, tmp_path / "v", hypotheses=[1], progress=False)
    torch.manual_seed(123)
    save_model(create_model("det", width=4), Path(ckpts["det"]) / "model.safetensors")  # "retrained"
    b = verify(cfg, tmp_path / "v", hypotheses=[1], progress=False)
    assert a["h1"]["Q"] != b["h1"]["Q"]


def test_map_cache_recomputes_a_map_whose_input_image_changed(tmp_path, monkeypatch) -> None:
    """Same settings, same ids: a map is reused only for the identical image (a digest of its
    pixels); an image that changed (re-prepared crop, new alignment code) is recomputed alone."""
    import torch

    import fstmatch.explain
    from fstmatch.data import Geometry
    from fstmatch.hypotheses.config import ShapleyConfig
    from fstmatch.hypotheses.maps import MapStore

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"stand-in weights")  # only its size and mtime enter the settings
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2)).eval()
    store = MapStore(tmp_path / "maps", ShapleyConfig(grid=4, budget=2), Geometry(canvas=16), torch.device("cpu"),
                     progress=False)
    rows = [{"id": "a"}, {"id": "b"}]
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    calls: list[int] = []
    real = fstmatch.explain.shapley

    def counting(model, imgs, *args, **kwargs):
        calls.append(imgs.shape[0])
        return real(model, imgs, *args, **kwargs)

    monkeypatch.setattr(fstmatch.explain, "shapley", counting)
    first = store.get("det__raw", model, str(weights), rows, images, [0, 1])
    assert calls == [2]
    again = store.get("det__raw", model, str(weights), rows, images, [0, 1])
    assert calls == [2] and (again.values == first.values).all()
    changed = images.clone()
    changed[1, :, :4] = 0.0
    third = store.get("det__raw", model, str(weights), rows, changed, [0, 1])
    assert calls == [2, 1]
    assert (third.values[0] == first.values[0]).all() and not (third.values[1] == first.values[1]).all()


def test_map_files_keep_the_per_image_numbers_of_the_summary(verified, toy_manifest, toy_checkpoints) -> None:
    """verify's map files hold per image what its summary averages: Q_t (H1, H2), δ (H3), lift, and
    the logit, score, v(full) and face of every map."""
    import numpy as np
    import torch

    from fstmatch.data import Geometry, read_manifest
    from fstmatch.explain.mapfile import read_maps
    from fstmatch.hypotheses.maps import load_images
    from fstmatch.models import load_model

    out, s = verified
    det, paired, unpaired = (read_maps(out / "maps" / f"{m}__raw.npz") for m in ("det", "det_paired", "det_unpaired"))
    for method in ("Deepfakes", "FaceSwap"):
        idx = [k for k, i in enumerate(det.ids) if i.startswith(method + "/")]
        assert det.metrics["qt"][idx].mean() == pytest.approx(s["h1"]["Q"][method], rel=1e-9)
        diff = paired.metrics["qt"][idx].mean(axis=1) - unpaired.metrics["qt"][idx].mean(axis=1)
        assert diff.mean() == pytest.approx(s["h2"]["diff"][method], rel=1e-9)
    delta = det.metrics["delta"]
    assert np.isnan(delta).sum() == 1  # the frame without c40
    assert np.nanmean(delta) == pytest.approx(s["h3"]["delta"]["det"], rel=1e-9)
    lift = det.metrics["lift"]
    assert np.isfinite(lift).all() and lift.mean() > 0
    c40 = read_maps(out / "maps" / "det__c40.npz")
    assert len(c40) == 7 and np.isfinite(c40.metrics["cos"]).all() and np.isfinite(c40.metrics["qt"]).all()
    assert read_maps(out / "maps" / "det__raw_repeat.npz").meta["variant"] == "raw_repeat"
    # the face each map explains, and the model's logit on it (= v(full), the explained logit)
    rows = {r["id"]: r for r in read_manifest(toy_manifest)}
    faces, _ = load_images([rows[i] for i in det.ids], toy_manifest.parent, Geometry(canvas=32))
    assert np.array_equal(det.image, (faces.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
    with torch.no_grad():
        logits = load_model(toy_checkpoints["det"]).eval()(faces).double()
    want = logits[torch.arange(len(det)), torch.as_tensor(det.target)].numpy()
    assert det.metrics["logit"] == pytest.approx(want, abs=1e-6)
    assert det.v_full == pytest.approx(want, abs=1e-4)
    assert det.metrics["score"] == pytest.approx(logits.softmax(1)[:, 1].numpy(), abs=1e-6)


def test_verify_with_another_explainer_writes_its_maps_and_judges_the_claims(toy_manifest, toy_checkpoints,
                                                                             tmp_path: Path) -> None:
    """explainer: gradcam — every map set is Grad-CAM's cells (its pixel map summed per cell), with a
    zero stderr, so the raw repeat equals the raw maps (reproducibility 1) and δ needs no correction."""
    from fstmatch.config import from_dict
    from fstmatch.explain.mapfile import read_maps
    from fstmatch.hypotheses.config import VerifyConfig
    from fstmatch.hypotheses.verify import verify

    cfg = from_dict(VerifyConfig, {
        "manifest": str(toy_manifest), "checkpoints": toy_checkpoints, "explainer": "gradcam",
        "images": {"per_method": 2, "canvas": 32, "holdout": 1}, "shapley": {"grid": 4},
        "noise_draws": 2, "figures_per_method": 0, "device": "cpu",
    })
    s = verify(cfg, tmp_path / "v", progress=False)
    assert s["explainer"] == "gradcam"
    det = read_maps(tmp_path / "v" / "maps" / "det__raw.npz")
    assert det.explainer == "gradcam" and det.pixels is not None and not det.stderr.any()
    np.testing.assert_allclose(det.values, det.pixels.reshape(len(det), 4, 8, 4, 8).sum(axis=(2, 4)), rtol=1e-4,
                               atol=1e-6)
    assert all(r == pytest.approx(1.0) for r in s["h3"]["reproducibility"].values())
    assert all(math.isfinite(q) for q in s["h1"]["Q"].values())


def test_reproducibility_is_measured_on_an_even_subsample_over_methods(toy_manifest, toy_checkpoints, tmp_path) -> None:
    from fstmatch.explain.mapfile import read_maps
    from fstmatch.hypotheses.stats import reproducibility
    from fstmatch.hypotheses.verify import _even_per_method

    rows = [{"method": m} for m in ["A"] * 6 + ["B"] * 3 + ["C"]]
    assert _even_per_method(rows, 5) == [0, 2, 5, 6, 8, 9]  # 3 of A's 6 (ends, middle), 1.5 -> 2 of B's, C's one
    assert _even_per_method(rows, None) == _even_per_method(rows, 10) == list(range(10))
    with pytest.raises(UserError, match="repeat_images"):
        _cfg(toy_manifest, toy_checkpoints, repeat_images=0)

    s = verify(_cfg(toy_manifest, toy_checkpoints, repeat_images=4), tmp_path, hypotheses=(3,), progress=False)
    h3 = s["h3"]
    assert h3["n_repeat"] == 4 and h3["n_images"] == 7
    assert s["shapley"]["n_forward"]["det__raw_repeat"] == 4 * 62
    raw, again = (read_maps(tmp_path / "maps" / f"det__{name}.npz") for name in ("raw", "raw_repeat"))
    index = {i: k for k, i in enumerate(raw.ids)}
    expected = reproducibility(raw.values[[index[i] for i in again.ids]], again.values)
    assert h3["reproducibility"]["det"] == pytest.approx(expected)
