"""The static explorer's files: every analysed frame, maps bit-exact from the run's map files, per-frame
numbers equal to fstmatch.hypotheses recomputed here on verify's own faces, safe file names, demo
layout, errors; and the page is built without a model or a manifest."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from fstmatch.browse import write_explorer
from fstmatch.browse.build import explorer_is_current
from fstmatch.cli import main
from fstmatch.hypotheses import (
    q_per_image,
    region_fractions,
    stability_per_image,
    truth_shares,
    unit_normalise,
)


def read_js(path: Path, call: str):
    text = path.read_text("ascii")
    assert text.startswith(call + "(") and text.endswith(");\n")
    return json.loads(text[len(call) + 1 : -3])


def npz_maps(run: Path, name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(run / "maps" / f"{name}.npz", allow_pickle=False) as z:
        return {str(i): (v, e) for i, v, e in zip(z["ids"], z["values"], z["stderr"])}


def f32(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<f4")


def test_index_lists_every_analysed_frame_with_its_versions(verify_out: Path, explorer: Path) -> None:
    summary = json.loads((verify_out / "summary.json").read_text())
    index = read_js(explorer.parent / "data" / "index.js", "FSTX.index")
    assert [f["id"] for f in index["frames"]] == summary["images"]["ids"]
    assert index["grid"] == 4 and index["thresholds"] == summary["config"]["thresholds"]
    assert index["models"] == ["source", "target", "det", "det_paired", "det_unpaired"]
    with_c40 = [f for f in index["frames"] if "c40" in f["v"]]
    assert len(with_c40) == summary["h3"]["n_images"] == 7  # the toy's missing c40 frame has raw and c23 only
    for f in index["frames"]:
        assert f["truth"] and f["v"]["raw"]["models"] == index["models"]
        for comp in ("c23", "c40"):
            if comp in f["v"]:
                assert f["v"][comp]["models"] == ["source", "target", "det"]
                assert f["v"][comp]["id"] == f["id"].replace("/raw/", f"/{comp}/")
    names = os.listdir(explorer.parent / "img")
    assert all(re.fullmatch(r"\d+_(raw|c23|c40|t)\.jpg|\d+_(donor|trace)\.png", n) for n in names)
    assert len([n for n in names if n.endswith("_raw.jpg")]) == len(index["frames"])


def _verify_masks(index: dict, toy_manifest: Path) -> np.ndarray:
    """The ground-truth masks ``(N, 2, H, W)`` of the explorer's frames on the faces verify analysed."""
    from fstmatch.data import Geometry, read_manifest
    from fstmatch.hypotheses.maps import load_images

    rows = {r["id"]: r for r in read_manifest(toy_manifest)}
    _, masks = load_images([rows[f["id"]] for f in index["frames"]], toy_manifest.parent, Geometry(canvas=32),
                           with_masks=True)
    assert masks is not None
    return masks.numpy()


def test_frame_chunks_hold_the_npz_maps_bit_exact(verify_out: Path, explorer: Path, toy_manifest: Path) -> None:
    index = read_js(explorer.parent / "data" / "index.js", "FSTX.index")
    masks = _verify_masks(index, toy_manifest)
    for k, f in enumerate(index["frames"]):
        k2, data = read_js(explorer.parent / "data" / "f" / f"{k}.js", "FSTX.frame")
        assert k2 == k
        for comp, v in f["v"].items():
            for m in v["models"]:
                values, stderr = npz_maps(verify_out, f"{m}__{comp}")[v["id"]]
                b_values, b_stderr = data["maps"][m][comp]
                assert np.array_equal(f32(b_values), values.astype("<f4").ravel())
                assert np.array_equal(f32(b_stderr), stderr.astype("<f4").ravel(), equal_nan=True)
        truth = region_fractions(masks[k], 4)  # the map file keeps the masks as uint8: within 1/510
        for region, b64 in data["fractions"].items():
            assert np.allclose(f32(b64), truth[region].ravel(), atol=1 / 500)


def test_per_frame_numbers_match_fstmatch_hypotheses(verify_out: Path, explorer: Path, toy_manifest: Path) -> None:
    summary = json.loads((verify_out / "summary.json").read_text())
    index = read_js(explorer.parent / "data" / "index.js", "FSTX.index")
    masks = _verify_masks(index, toy_manifest)
    ts = summary["config"]["thresholds"]
    maps = {(m, c): npz_maps(verify_out, f"{m}__{c}") for m in index["models"] for c in ("raw", "c23", "c40")
            if (verify_out / "maps" / f"{m}__{c}.npz").is_file()}
    qs, h2s = [], []
    for k, f in enumerate(index["frames"]):
        raw = f["v"]["raw"]
        s, t, d, dp, du = (maps[(m, "raw")][f["id"]][0] for m in index["models"])
        assert raw["qt"] == pytest.approx(q_per_image(s, t, d, ts)[0], rel=1e-5, abs=1e-9)
        qs.append(raw["q"])
        h2 = q_per_image(s, t, dp, ts).mean() - q_per_image(s, t, du, ts).mean()
        assert f["h2"] == pytest.approx(h2, rel=1e-5, abs=1e-9)
        h2s.append(f["h2"])
        if "c40" in f["v"]:
            for m in ("source", "target", "det"):
                a, b, c = (maps[(m, comp)][f["v"][comp]["id"]][0] for comp in ("raw", "c23", "c40"))
                assert f["delta"][m] == pytest.approx(stability_per_image(a, b, c)[0], rel=1e-5, abs=1e-9)
                cos = (unit_normalise(a) * unit_normalise(c)).sum()
                assert f["v"]["c40"]["cos"][m] == pytest.approx(cos, rel=1e-5, abs=1e-9)
        trace = region_fractions(masks[k], 4)["trace"]
        share, expected, _ = truth_shares(d, trace)
        assert raw["lift"]["det"] == pytest.approx(share[0] / expected[0], rel=1e-5)
    # the run's own per-method means are those of the per-frame numbers
    for method in ("Deepfakes", "FaceSwap"):
        idx = [k for k, f in enumerate(index["frames"]) if f["method"] == method]
        assert np.mean([qs[k] for k in idx]) == pytest.approx(summary["h1"]["Q"][method], rel=1e-4)
        assert np.mean([h2s[k] for k in idx]) == pytest.approx(summary["h2"]["diff"][method], rel=1e-4)


def test_scores_and_logits_are_the_models_outputs(verify_out: Path, explorer: Path, toy_manifest: Path) -> None:
    import torch

    from fstmatch.data import Geometry, read_manifest
    from fstmatch.hypotheses.maps import load_images
    from fstmatch.models import load_model

    summary = json.loads((verify_out / "summary.json").read_text())
    index = read_js(explorer.parent / "data" / "index.js", "FSTX.index")
    rows = {r["id"]: r for r in read_manifest(toy_manifest)}
    f = index["frames"][0]
    x, _ = load_images([rows[f["id"]]], toy_manifest.parent, Geometry(canvas=32))
    for role, key in (("det", "label"), ("source", "source"), ("target", "target")):
        with torch.no_grad():
            logits = load_model(summary["models"][role]["checkpoint"]).eval()(x)[0]
        cls = rows[f["id"]][key]
        score, logit = f["v"]["raw"]["score"][role]
        assert logit == pytest.approx(float(logits[cls]), rel=1e-4, abs=1e-6)
        assert score == pytest.approx(float(logits.softmax(0)[cls]), rel=1e-4, abs=1e-6)


def test_demo_layout_and_up_to_date_check(verify_out: Path, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    shutil.copytree(verify_out, demo / "verify", ignore=shutil.ignore_patterns("explorer"))
    page = write_explorer(demo, progress=False)
    assert page == demo / "explorer" / "index.html" and explorer_is_current(demo)
    index = read_js(page.parent / "data" / "index.js", "FSTX.index")
    assert len(index["frames"]) == 8 and index["scores"] == ["det", "det_paired", "det_unpaired", "source", "target"]
    later = page.stat().st_mtime + 5
    os.utime(demo / "verify" / "maps" / "det__raw.npz", (later, later))
    assert not explorer_is_current(demo)


def test_an_interrupted_build_keeps_the_previous_copy(verify_out: Path, tmp_path: Path, monkeypatch) -> None:
    from fstmatch.browse import build

    run = tmp_path / "run"
    shutil.copytree(verify_out, run, ignore=shutil.ignore_patterns("explorer"))
    page = write_explorer(run, progress=False)
    before = page.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "_frame_record", boom)
    with pytest.raises(KeyboardInterrupt):
        write_explorer(run, progress=False)
    assert page.read_bytes() == before and (page.parent / "data" / "index.js").is_file()
    assert not list(run.glob(".explorer*"))


def test_cli_errors_are_user_errors(tmp_path: Path, capsys) -> None:
    assert main(["browse", str(tmp_path / "absent")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["browse", str(tmp_path)]) == 2
    assert "holds no maps" in capsys.readouterr().err


def test_a_busy_port_is_a_user_error(verify_out: Path, tmp_path: Path, capsys) -> None:
    import socket

    run = tmp_path / "run"
    shutil.copytree(verify_out, run)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["browse", str(run), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "choose another --port" in err


def test_fstmatch_verify_writes_the_explorer(toy_manifest: Path, toy_checkpoints: dict[str, str], tmp_path: Path) -> None:
    import yaml

    cfg = {"manifest": str(toy_manifest), "checkpoints": toy_checkpoints, "device": "cpu", "noise_draws": 2,
           "images": {"per_method": 2, "canvas": 32}, "shapley": {"grid": 4, "budget": 2}}
    (tmp_path / "verify.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "v"
    assert main(["verify", "--hypothesis", "1", "--config", str(tmp_path / "verify.yaml"), "--out", str(out),
                 "--no-progress"]) == 0
    index = read_js(out / "explorer" / "data" / "index.js", "FSTX.index")
    assert index["models"] == ["source", "target", "det"] and len(index["frames"]) == 4
    assert all(set(f["v"]) == {"raw"} and f["h2"] is None and f["delta"] == {} for f in index["frames"])
    assert explorer_is_current(out)


def test_the_page_is_built_without_a_model_a_manifest_or_an_alignment(verify_out: Path, explorer: Path,
                                                                         tmp_path: Path, monkeypatch) -> None:
    """The checkpoints and the manifest gone, loading a model or aligning a face an error: the same page."""
    import fstmatch.data.dataset
    import fstmatch.models

    run = tmp_path / "run"
    shutil.copytree(verify_out, run, ignore=shutil.ignore_patterns("explorer"))
    summary = json.loads((run / "summary.json").read_text())
    for info in summary["models"].values():
        info["checkpoint"] = str(tmp_path / "gone")
    summary["images"]["manifest"] = summary["config"]["manifest"] = str(tmp_path / "gone.jsonl")
    (run / "summary.json").write_text(json.dumps(summary))

    def forbidden(*a, **k):
        raise AssertionError("the explorer loaded a model or aligned a face")

    monkeypatch.setattr(fstmatch.models, "load_model", forbidden)
    monkeypatch.setattr(fstmatch.data.dataset, "aligned_face", forbidden)
    index = read_js(write_explorer(run, progress=False).parent / "data" / "index.js", "FSTX.index")
    want = read_js(explorer.parent / "data" / "index.js", "FSTX.index")
    assert index["frames"] == want["frames"] and index["scores"] == want["scores"]
    for name in os.listdir(explorer.parent / "img"):
        assert (run / "explorer" / "img" / name).read_bytes() == (explorer.parent / "img" / name).read_bytes()
