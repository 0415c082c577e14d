"""``benchmarks/explainers_vs_truth.py`` end to end on a hand-made run folder (two fakes at raw and
c23 with ground-truth masks, width-4 ResNets), ``--quick`` with two explainers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fstmatch.models import create_model, save_model

from ._benchmarks import load_benchmark

def _bench():
    return load_benchmark("explainers_vs_truth")


def _landmarks() -> list[list[float]]:
    pts = np.full((68, 2), 48.0)
    pts[36:42], pts[42:48] = [34, 40], [62, 40]
    pts[30] = [48, 56]
    pts[48:51], pts[54:57] = [37, 70], [59, 70]
    return pts.tolist()


@pytest.fixture
def run(tmp_path: Path) -> Path:
    root = tmp_path / "prep"
    (root / "crops").mkdir(parents=True)
    rng = np.random.default_rng(0)
    mask = np.zeros((96, 96, 3), np.uint8)
    mask[20:76, 20:76, 2] = 255  # R (BGR on disk): donor, the face's centre
    mask[:, :48, 1] = 255  # G: trace, the left half
    cv2.imwrite(str(root / "mask.png"), mask)
    rows, ids = [], []
    for method, video, source, target in (("Deepfakes", "000_001", 0, 1), ("FaceSwap", "002_003", 2, 3)):
        for comp in ("raw", "c23"):
            path = f"crops/{method}_{comp}.png"
            cv2.imwrite(str(root / path), rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
            row_id = f"{method}/{comp}/{video}/0000"
            rows.append({"id": row_id, "path": path, "mask_path": "mask.png", "method": method, "compression": comp,
                         "video": video, "frame": 0, "split": "train", "label": 1, "source": source,
                         "target": target, "box": [0, 0, 96, 96], "landmarks": _landmarks(), "score": None})
            if comp == "raw":
                ids.append(row_id)
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "demo"
    models = {"det": create_model("det", width=4), "source": create_model("source", num_identities=4, width=4),
              "target": create_model("target", num_identities=4, width=4)}
    for role, m in models.items():
        save_model(m.eval(), out / "runs" / role / "model.safetensors")
    summary = {
        "images": {"manifest": str(root / "manifest.jsonl"), "ids": ids},
        "config": {"images": {"convention": "fstmatch", "canvas": 32, "face_width": None, "scale": 0.9}},
        "shapley": {"grid": 4, "budget": 2},
        "models": {role: {"checkpoint": str(out / "runs" / role), "arch": None} for role in models},
    }
    (out / "verify").mkdir(parents=True)
    (out / "verify" / "summary.json").write_text(json.dumps(summary))
    return out


def test_quick_run_scores_every_role_and_compression_and_randomises_top_down(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores"
    assert _bench().main(["--run", str(run), "--out", str(out), "--quick", "--explainers", "occlusion", "saliency"]) == 0
    res = json.loads((out / "explainers_vs_truth.json").read_text())
    assert (out / "explainers_vs_truth.md").read_text().startswith("# Explainers against FST-Synth's ground truth")
    assert set(res["scores"]["det"]["by_compression"]) == {"raw", "c23"}  # no c40 rows in this manifest
    assert set(res["scores"]["target"]["by_compression"]) == {"raw"}  # quick: encoders on raw only
    assert (res["scores"]["target"]["region"], res["scores"]["source"]["region"]) == ("donor", "rest")
    for comp in ("raw", "c23"):
        for name in ("occlusion", "saliency"):
            s = res["scores"]["det"]["by_compression"][comp][name]
            assert s["seconds"]["n"] == 2 and s["seconds"]["value"] > 0
            assert 0.0 <= s["auroc"]["value"] <= 1.0 and 0.0 <= s["pointing"]["value"] <= 1.0
            # the trace is the left half of the crop: after alignment it still covers part of the face
            assert 0.0 < s["pointing_chance"] < 1.0
    san = res["sanity"]
    assert san["steps"] == ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
    assert all(len(san["rho"][n]) == 7 for n in ("occlusion", "saliency"))
    assert set(san["flagged"]) <= {"occlusion", "saliency"}


def test_a_folder_without_a_summary_is_a_user_error(tmp_path: Path) -> None:
    from fstmatch.errors import UserError

    with pytest.raises(UserError, match=r"no verify/summary\.json"):
        _bench().main(["--run", str(tmp_path), "--out", str(tmp_path / "o"), "--quick"])
