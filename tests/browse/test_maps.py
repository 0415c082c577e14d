"""The explorer on any folder of map files: an ``fstmatch explain`` output, a ``deepfakebench``
verify run (its faces are those verify analysed), and old map files (a clear error)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from browse.test_build import f32, read_js
from fstmatch.browse import write_explorer
from fstmatch.cli import main
from fstmatch.errors import UserError
from fstmatch.explain.mapfile import read_maps


def _same_jpeg(path: Path, rgb: np.ndarray, tmp: Path) -> bool:
    """Whether ``path`` is the explorer's JPEG of exactly ``rgb`` (uint8 (H, W, 3))."""
    from fstmatch.browse.build import _write_image

    _write_image(tmp, rgb)
    return path.read_bytes() == tmp.read_bytes()


def test_browse_shows_an_explain_output(toy_manifest: Path, toy_checkpoints: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "maps"
    assert main(["explain", "--checkpoint", toy_checkpoints["det"], "--data", str(toy_manifest), "--out", str(out),
                 "--split", "train", "--manipulations", "Deepfakes", "--compressions", "raw", "c23", "--canvas", "32", "--grid", "4",
                 "--budget", "2", "--no-overlay", "--no-progress"]) == 0
    files = sorted(out.glob("*.npz"))
    assert len(files) == 24  # 4 videos x 3 frames, at raw and c23
    page = write_explorer(out, progress=False)
    index = read_js(page.parent / "data" / "index.js", "FSTX.index")
    assert index["models"] == ["det"] and index["grid"] == 4 and index["canvas"] == 32
    maps = {m.ids[0]: m for m in (read_maps(p) for p in files)}
    assert len(index["frames"]) == 12 and all(set(f["v"]) == {"raw", "c23"} for f in index["frames"])
    for k, f in enumerate(index["frames"]):
        _, data = read_js(page.parent / "data" / "f" / f"{k}.js", "FSTX.frame")
        for comp, v in f["v"].items():
            m = maps[v["id"]]
            assert (f["method"], f["video"], f["frame"]) == (m.info[0]["method"], m.info[0]["video"], m.info[0]["frame"])
            assert np.array_equal(f32(data["maps"]["det"][comp][0]), m.values[0].astype("<f4").ravel())
            assert v["score"]["det"] == [pytest.approx(m.metrics["score"][0], rel=1e-5),
                                         pytest.approx(m.metrics["logit"][0], rel=1e-5)]
            assert v["q"] is None and f["delta"] == {} and f["truth"] is False  # nothing of verify here
            assert _same_jpeg(page.parent / "img" / f"{k}_{comp}.jpg", m.image[0], tmp_path / "x.jpg")
    assert main(["browse", str(tmp_path / "empty-does-not-exist")]) == 2


def test_a_deepfakebench_run_shows_the_faces_verify_analysed(toy_manifest: Path, toy_checkpoints: dict[str, str],
                                                             tmp_path: Path) -> None:
    import torch

    from fstmatch.config import from_dict
    from fstmatch.data import Geometry, read_manifest
    from fstmatch.hypotheses.config import VerifyConfig
    from fstmatch.hypotheses.maps import load_images
    from fstmatch.hypotheses.verify import verify

    cfg = from_dict(VerifyConfig, {
        "manifest": str(toy_manifest), "checkpoints": toy_checkpoints,
        "images": {"per_method": 2, "canvas": 32, "holdout": 1, "convention": "deepfakebench"},
        "shapley": {"grid": 4, "budget": 2, "batch_size": 64},
        "noise_draws": 2, "figures_per_method": 0, "device": "cpu",
    })
    out = tmp_path / "v"
    verify(cfg, out, hypotheses=[1], progress=False)
    det = read_maps(out / "maps" / "det__raw.npz")
    assert det.geometry == {"convention": "deepfakebench", "canvas": 32, "face_width": None, "scale": 1.3}
    rows = {r["id"]: r for r in read_manifest(toy_manifest)}
    faces, masks = load_images([rows[i] for i in det.ids], toy_manifest.parent, Geometry("deepfakebench", 32),
                               with_masks=True)
    pixels = (faces.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    assert det.image is not None and np.array_equal(det.image, pixels)  # the map file keeps verify's faces
    with torch.no_grad():  # and the logit of the explained class on them
        from fstmatch.models import load_model

        logits = load_model(toy_checkpoints["det"]).eval()(faces)
    assert det.metrics["logit"] == pytest.approx(logits[:, 1].double().numpy(), abs=1e-5)
    fst, _ = load_images([rows[i] for i in det.ids], toy_manifest.parent, Geometry(canvas=32))
    page = write_explorer(out, progress=False)
    index = read_js(page.parent / "data" / "index.js", "FSTX.index")
    assert [f["id"] for f in index["frames"]] == json.loads((out / "summary.json").read_text())["images"]["ids"]
    for k, f in enumerate(index["frames"]):
        j = det.ids.index(f["id"])
        assert _same_jpeg(page.parent / "img" / f"{k}_raw.jpg", pixels[j], tmp_path / "x.jpg")  # verify's face
        other = (fst[j].permute(1, 2, 0).numpy() * 255).round()
        assert np.abs(other - pixels[j]).mean() > 20  # which is not the fstmatch-aligned one
        assert masks is not None and f["truth"]
        _, data = read_js(page.parent / "data" / "f" / f"{k}.js", "FSTX.frame")
        from fstmatch.hypotheses import region_fractions

        trace = region_fractions(masks[j].numpy(), 4)["trace"]
        assert np.allclose(f32(data["fractions"]["trace"]), trace.ravel(), atol=1 / 500)


def test_old_map_files_get_a_message_naming_their_format(tmp_path: Path, capsys) -> None:
    from fstmatch.utils.io import atomic_savez

    run = tmp_path / "run"
    atomic_savez(run / "maps" / "det__raw.npz", ids=np.array(["a"]), settings=np.array("{}"),
                 values=np.zeros((1, 4, 4)), stderr=np.zeros((1, 4, 4)), n_forward=np.array([1]),
                 digests=np.array(["0" * 16]))
    with pytest.raises(UserError, match=r"verify map cache of map format 1.*reads map format 2.*rerun `fstmatch verify`"):
        write_explorer(run, progress=False)
    old = tmp_path / "explained"
    atomic_savez(old / "Deepfakes__raw__000_001__0000.npz", values=np.zeros((4, 4)), stderr=np.zeros((4, 4)),
                 id=np.str_("Deepfakes/raw/000_001/0000"), explained_class=np.int64(1))
    assert main(["browse", str(old)]) == 2
    err = capsys.readouterr().err
    assert "`fstmatch explain` map of map format 1" in err and "rerun `fstmatch explain`" in err
    atomic_savez(tmp_path / "other" / "x.npz", a=np.zeros(3))
    with pytest.raises(UserError, match="not an fstmatch map file"):
        write_explorer(tmp_path / "other", progress=False)
