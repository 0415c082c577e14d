"""verify with another framework's detector: ``checkpoints.det: {path, arch}`` (a DeepfakeBench
Xception state dict) and faces in the ``deepfakebench`` convention; encoders must share it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from fstmatch.config import from_dict, merge
from fstmatch.errors import UserError
from fstmatch.hypotheses.config import VerifyConfig
from fstmatch.hypotheses.verify import verify

ARCH = "deepfakebench:xception"


@pytest.fixture(scope="module")
def xception_pth(tmp_path_factory) -> str:
    from fstmatch.models import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("dfb") / "xception_best.pth"
    torch.save(create_model(ARCH).state_dict(), path)  # DeepfakeBench's layout (tests/models)
    return str(path)


def _cfg(manifest: Path, checkpoints: dict, **kw) -> VerifyConfig:
    base = {
        "manifest": str(manifest), "checkpoints": checkpoints,
        "images": {"per_method": 2, "canvas": 32, "holdout": 1, "convention": "deepfakebench"},
        "shapley": {"grid": 4, "budget": 2, "batch_size": 64},
        "noise_draws": 4, "figures_per_method": 0, "device": "cpu", "truth": False,
    }
    return from_dict(VerifyConfig, merge(base, kw))


def test_h1_on_a_deepfakebench_detector(toy_manifest, toy_checkpoints, xception_pth, tmp_path) -> None:
    ckpts = {**toy_checkpoints, "det": {"path": xception_pth, "arch": ARCH}}
    cfg = _cfg(toy_manifest, ckpts)
    assert cfg.images.scale == 1.3 and cfg.checkpoints.ref("det") == (xception_pth, ARCH)
    s = verify(cfg, tmp_path, hypotheses=[1], progress=False)
    assert s["models"]["det"]["name"] == ARCH
    assert all(math.isfinite(q) for q in s["h1"]["Q"].values())
    assert s["config"]["images"]["convention"] == "deepfakebench"


def test_encoders_trained_on_another_convention_are_refused(toy_manifest, toy_checkpoints, xception_pth,
                                                            tmp_path) -> None:
    from fstmatch.train import TrainConfig, train

    run = tmp_path / "source"
    cfg = from_dict(TrainConfig, {"data": {"manifest": str(toy_manifest), "val_split": None},
                                  "model": {"role": "source", "width": 4}, "input": {"canvas": 32, "augment": False},
                                  "max_steps": 1, "batch_size": 4, "eval_every": 0, "device": "cpu"})
    train(cfg, run)
    ckpts = {**toy_checkpoints, "source": str(run), "det": {"path": xception_pth, "arch": ARCH}}
    with pytest.raises(UserError, match=r"checkpoints.source .* other faces.*convention 'fstmatch' vs images.convention"):
        verify(_cfg(toy_manifest, ckpts), tmp_path / "v", hypotheses=[1], progress=False)


def test_train_missing_trains_encoders_in_the_images_convention(toy_manifest, toy_checkpoints, xception_pth,
                                                                tmp_path) -> None:
    from fstmatch.train import load_run_config

    ckpts = {**toy_checkpoints, "source": None, "det": {"path": xception_pth, "arch": ARCH}}
    cfg = _cfg(toy_manifest, ckpts, images={"per_method": 1}, train_missing=True,
               train={"max_steps": 1, "batch_size": 4, "eval_every": 0, "device": "cpu",
                      "model": {"width": 4}, "input": {"augment": False}})
    verify(cfg, tmp_path, hypotheses=[1], progress=False)
    trained = load_run_config(tmp_path / "runs" / "source").input
    assert (trained.convention, trained.canvas, trained.scale) == ("deepfakebench", 32, 1.3)
    clash = _cfg(toy_manifest, ckpts, train_missing=True, train={"input": {"convention": "fstmatch"}})
    with pytest.raises(UserError, match=r"train\.input\.convention = 'fstmatch' differs from images\.convention"):
        verify(clash, tmp_path / "v2", hypotheses=[1], progress=False)
