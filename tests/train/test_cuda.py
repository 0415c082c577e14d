"""The CUDA paths: training with fp16/bf16 autocast, resume, testing and Shapley maps on a GPU.

Skipped where there is no GPU (CI has none); run on a GPU machine with
``pytest tests/train/test_cuda.py``. They compare with the CPU where the result must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_train import cfg_for  # tests/train is on sys.path (no __init__.py)

from fstmatch.cli import main
from fstmatch.models import create_model, load_model
from fstmatch.train import train
from fstmatch.utils.io import read_jsonl

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("amp", ["fp16", "bf16", "none"])
def test_train_and_resume_on_cuda(tiny_manifest: Path, tmp_path: Path, amp: str) -> None:
    run = tmp_path / amp
    cfg = cfg_for(tiny_manifest, "device=cuda", f"amp={amp}", "max_steps=6", "checkpoint_every=3", "eval_every=3")
    train(cfg, run, stop_at_step=3, progress=False)
    train(cfg, run, resume=True, progress=False)
    rows = read_jsonl(run / "log.jsonl")
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 6
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows if "loss" in r)
    weights = load_model(run)
    assert all(torch.isfinite(p).all() for p in weights.parameters())


def test_fstmatching_fp16_logs_all_terms_on_cuda(tiny_manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "fst"
    train(cfg_for(tiny_manifest, "device=cuda", "amp=fp16", "model.role=fstmatching", "max_steps=3",
                  "eval_every=0"), run, progress=False)
    terms = ("loss", "det", "source", "target", "interaction")
    rows = [r for r in read_jsonl(run / "log.jsonl") if "loss" in r]
    assert len(rows) == 3 and all(torch.isfinite(torch.tensor([r[k] for k in terms])).all() for r in rows)


def test_test_command_on_cuda_matches_cpu(tiny_manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "det"
    train(cfg_for(tiny_manifest, "device=cuda", "max_steps=4", "eval_every=0"), run, progress=False)
    out = {}
    for device in ("cuda", "cpu"):
        path = tmp_path / f"{device}.json"
        assert main(["test", "--data", str(tiny_manifest), "--checkpoint", str(run), "--device", device,
                     "--out", str(path), "--no-progress"]) == 0
        out[device] = json.loads(path.read_text())["overall"]
    assert out["cuda"]["auc"] == pytest.approx(out["cpu"]["auc"], abs=0.02)


def test_shapley_on_cuda_matches_cpu() -> None:
    from fstmatch.explain import shapley

    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=2, width=8).eval()
    images = torch.rand(2, 3, 48, 48)
    targets = torch.tensor([0, 1])
    cpu = shapley(model, images, targets, grid=3, estimator="exact")
    gpu = shapley(model.cuda(), images.cuda(), targets, grid=3, estimator="exact")
    # TF32 convolutions on the GPU: agreement to a few 1e-3 of the map's scale
    scale = cpu.values.abs().max()
    assert (gpu.values - cpu.values).abs().max() <= 5e-3 * scale + 1e-4
    walk = shapley(model, images.cuda(), targets, grid=4, budget=8, seed=3)
    assert walk.values.shape == (2, 4, 4) and torch.isfinite(walk.stderr).all()
    assert torch.allclose(walk.values.flatten(1).sum(1), walk.v_full - walk.v_empty, atol=1e-3)
