"""``fstmatch test`` and ``fstmatch explain`` on a DeepfakeBench Xception checkpoint (``torch.save`` of
its state dict), with faces aligned in the ``deepfakebench`` convention, on a tiny hand-made manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from fstmatch.cli import main
from fstmatch.data import Geometry, load_face, read_manifest
from fstmatch.explain.mapfile import read_maps
from fstmatch.models import create_model

ARCH = "deepfakebench:xception"


@pytest.fixture
def manifest(crop_manifest) -> Path:
    return crop_manifest([("real", "003", 0, 3, 3), ("Deepfakes", "003_017", 1, 3, 17),
                         ("Deepfakes", "005_009", 1, 5, 9), ("real", "005", 0, 5, 5)])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, nn.Module]:
    """A DeepfakeBench-layout Xception with random weights and BatchNorm statistics, saved as
    DeepfakeBench saves it (``torch.save(detector.state_dict())``)."""
    torch.manual_seed(0)
    model = create_model(ARCH)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    path = tmp_path_factory.mktemp("dfb") / "xception_best.pth"
    torch.save(model.state_dict(), path)
    return path, model.eval()


def _faces(manifest: Path, canvas: int) -> torch.Tensor:
    rows = read_manifest(manifest)
    images = [load_face(r, manifest.parent, geometry=Geometry("deepfakebench", canvas))[0] for r in rows]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def test_fstmatch_test_on_a_deepfakebench_checkpoint(checkpoint, manifest: Path, tmp_path: Path, capsys) -> None:
    path, model = checkpoint
    out = tmp_path / "metrics.json"
    code = main(["test", "--data", str(manifest), "--checkpoint", str(path), "--arch", ARCH,
                 "--convention", "deepfakebench", "--canvas", "64", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert (result["role"], result["arch"], result["convention"], result["canvas"], result["scale"]) == (
        "det", ARCH, "deepfakebench", 64, 1.3)
    with torch.no_grad():
        probs = torch.softmax(model(_faces(manifest, 64)), 1)[:, 1].numpy()
    labels = [r["label"] for r in read_manifest(manifest)]
    assert result["overall"]["n"] == 4
    assert result["overall"]["auc"] == pytest.approx(roc_auc_score(labels, probs))
    assert result["overall"]["acc"] == pytest.approx(np.mean((probs >= 0.5) == np.array(labels)))


def test_fstmatch_explain_on_a_deepfakebench_checkpoint(checkpoint, manifest: Path, tmp_path: Path, capsys) -> None:
    from fstmatch.explain import _incremental

    path, model = checkpoint
    assert not _incremental.supports(model)  # the batched path explains it, not the ResNet walk
    out = tmp_path / "maps"
    args = ["explain", "--checkpoint", str(path), "--arch", ARCH, "--convention", "deepfakebench",
            "--data", str(manifest), "--out", str(out), "--canvas", "32", "--grid", "4", "--budget", "2",
            "--no-progress", "--no-overlay"]
    assert main(args) == 0, capsys.readouterr().err
    settings = json.loads((out / "explain.json").read_text())
    assert (settings["arch"], settings["convention"], settings["canvas"], settings["target_kind"]) == (
        ARCH, "deepfakebench", 32, "det")
    faces = _faces(manifest, 32)
    rows = read_manifest(manifest)
    with torch.no_grad():
        full, black = model(faces), model(torch.zeros_like(faces))
    for i, row in enumerate(rows):
        m = read_maps(out / f"{row['id'].replace('/', '__')}.npz")
        assert m.values.shape == (1, 4, 4) and m.target.tolist() == [row["label"]]
        assert m.geometry == {"convention": "deepfakebench", "canvas": 32, "face_width": None, "scale": 1.3}
        assert np.array_equal(m.image[0], (faces[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        # efficiency: the cells' values add up to v(face) - v(black) of the explained logit
        gap = float(full[i, row["label"]] - black[i, row["label"]])
        assert float(m.values.sum()) == pytest.approx(gap, rel=1e-3, abs=1e-4)
        assert float(m.v_full[0] - m.v_empty[0]) == pytest.approx(gap, rel=1e-3, abs=1e-4)
    # resuming with another convention is refused: the maps would mix two alignments
    assert main([*args[:6], "fstmatch", *args[7:]]) == 2
    assert "convention" in capsys.readouterr().err
