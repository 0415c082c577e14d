"""A ``deepfakebench``-convention demo: its test stage and its verify stage see the faces verify
analyses (one Geometry from the training run's config, convention included)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fstmatch.data import Geometry
from hypotheses.conftest import toy_manifest  # noqa: F401 - the toy manifest fixture, reused as it is


@pytest.fixture(scope="module")
def dfb_det(toy_manifest: Path, tmp_path_factory) -> Path:  # noqa: F811
    """A one-step detector trained on 32 px deepfakebench faces."""
    from fstmatch.config import from_dict
    from fstmatch.train import TrainConfig, train

    run = tmp_path_factory.mktemp("dfb") / "det"
    cfg = from_dict(TrainConfig, {"data": {"manifest": str(toy_manifest), "val_split": None},
                                  "model": {"role": "det", "width": 4},
                                  "input": {"convention": "deepfakebench", "canvas": 32, "augment": False},
                                  "max_steps": 1, "batch_size": 4, "eval_every": 0, "device": "cpu"})
    torch.manual_seed(0)
    train(cfg, run)
    return run


def _verify_faces(toy_manifest: Path, rows: list[dict], det_run: Path) -> torch.Tensor:  # noqa: F811
    """The faces the demo's verify stage analyses for ``rows`` (its VerifyConfig, verify's loader)."""
    from fstmatch.config import load_config
    from fstmatch.hypotheses.maps import load_images
    from fstmatch.pipeline.demo import DemoConfig, demo_verify_config
    from fstmatch.train import load_run_config

    cfg = load_config(DemoConfig, kind="demo", preset="tiny")
    vcfg = demo_verify_config(cfg, load_run_config(det_run), toy_manifest, {"det": str(det_run)})
    assert vcfg.images.geometry() == Geometry("deepfakebench", 32) and vcfg.images.scale == 1.3
    x, _ = load_images(rows, toy_manifest.parent, vcfg.images.geometry())
    return x


def test_demo_test_stage_scores_the_faces_verify_analyses(toy_manifest: Path, dfb_det: Path, tmp_path: Path,  # noqa: F811
                                                          monkeypatch) -> None:
    from fstmatch.data import read_manifest
    from fstmatch.metrics import detection_metrics
    from fstmatch.models import load_model
    from fstmatch.pipeline import demo
    evaluate_module = importlib.import_module("fstmatch.train.evaluate")  # the package's name is the function

    rows = [r for r in read_manifest(toy_manifest) if r["compression"] == "raw"]
    seen: list[Geometry] = []
    real_predict = evaluate_module.predict

    def spy(*args, **kwargs):
        seen.append(kwargs["geometry"])
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "predict", spy)
    demo._test(dfb_det, rows, toy_manifest.parent, 16, tmp_path / "det.json")
    assert seen == [Geometry("deepfakebench", 32)]
    res = json.loads((tmp_path / "det.json").read_text())
    # the same numbers from verify's faces, scored here
    faces = _verify_faces(toy_manifest, rows, dfb_det)
    with torch.no_grad():
        prob = load_model(dfb_det).eval()(faces).softmax(1)[:, 1].numpy()
    labels = np.array([r["label"] for r in rows])
    videos = [f"{r['method']}/{r['compression']}/{r['video']}" for r in rows]
    want = detection_metrics(labels, prob, video_ids=videos)
    assert res["overall"]["auc"] == pytest.approx(want["auc"], abs=1e-9)
    assert res["overall"]["ap"] == pytest.approx(want["ap"], abs=1e-9)
    # the fstmatch faces of the same rows differ: the convention is what the test checks
    from fstmatch.hypotheses.maps import load_images

    other, _ = load_images(rows, toy_manifest.parent, Geometry(canvas=32))
    assert (other - faces).abs().mean() > 0.05
