"""End-to-end training on the tiny hand-made set: run directory, resume, bad input, FST-Matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fstmatch.cli import main
from fstmatch.config import load_config
from fstmatch.errors import UserError
from fstmatch.train import TrainConfig, TrainingDiverged, train
from fstmatch.utils.io import read_jsonl

TINY = ["device=cpu", "log_every=1", "batch_size=8"]


def cfg_for(manifest: Path, *overrides: str) -> TrainConfig:
    return load_config(TrainConfig, kind="train", preset="demo-tiny",
                       overrides=[f"data.manifest={manifest}", *TINY, *overrides])


def weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "model.safetensors"))


def test_cli_train_then_test_det(tiny_manifest: Path, tmp_path: Path, capsys):
    run = tmp_path / "det"
    rc = main(["train", "--data", str(tiny_manifest), "--model", "det", "--out", str(run), "--preset", "demo-tiny",
               "--no-progress", "--set", "device=cpu", "--set", "batch_size=8", "--set", "log_every=3"])
    assert rc == 0
    assert {"model.safetensors", "state.pt", "config.yaml", "log.jsonl", "tb"} <= {p.name for p in run.iterdir()}
    assert list((run / "tb").glob("events.out.tfevents.*"))
    log = read_jsonl(run / "log.jsonl")
    steps = [r for r in log if "loss" in r]
    assert steps and all({"lr", "img_per_s", "loss", "det"} <= set(r) for r in steps)
    assert any("val_auc" in r for r in log) and log[-1]["event"] == "done"
    state = torch.load(run / "state.pt", weights_only=True)  # plain tensors and dicts only
    assert state["step"] == log[-1]["step"] == 2 * 9  # 2 epochs of 72 rows / 8
    assert {"optimizer", "scheduler", "rng", "config", "model"} <= set(state)

    from fstmatch.models import load_model, read_model_meta

    assert read_model_meta(run)["role"] == "det"
    assert load_model(run)(torch.rand(2, 3, 48, 48)).shape == (2, 2)

    capsys.readouterr()
    assert main(["test", "--data", str(tiny_manifest), "--checkpoint", str(run), "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "Deepfakes/c23" in table and "overall" in table and "video_auc" in table
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["role"] == "det" and metrics["split"] == "test" and metrics["canvas"] == 48
    assert set(metrics["by_method"]) == {f"{m}/{c}" for m in ("Deepfakes", "FaceSwap") for c in ("raw", "c23")}
    group = metrics["by_method"]["FaceSwap/raw"]
    assert (group["n_real"], group["n_fake"]) == (6, 6)  # the method's fakes plus the reals of raw
    assert group["n_videos"] == 2 + 2
    assert 0.0 <= metrics["overall"]["auc"] <= 1.0 and metrics["overall"]["n"] == 36


def test_resume_reaches_the_same_weights(tiny_manifest: Path, tmp_path: Path):
    cfg = cfg_for(tiny_manifest, "max_steps=7", "input.augment=true", "checkpoint_every=2", "eval_every=0")
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "resumed", stop_at_step=4, progress=False)
    assert torch.load(tmp_path / "resumed" / "state.pt", weights_only=True)["step"] == 4
    train(cfg, tmp_path / "resumed", resume=True, progress=False)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = read_jsonl(tmp_path / "resumed" / "log.jsonl")
    assert [r["event"] for r in log if "event" in r] == ["start", "stopped", "resume", "done"]


def test_resume_with_a_persistent_caching_worker_reaches_the_same_weights(tiny_manifest: Path, tmp_path: Path):
    cfg = cfg_for(tiny_manifest, "epochs=3", "num_workers=1", "cache_mb=64", "input.augment=false", "eval_every=0")
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "resumed", stop_at_step=12, progress=False)  # mid-epoch 2 (9 steps an epoch)
    train(cfg, tmp_path / "resumed", resume=True, progress=False)
    uncached = cfg_for(tiny_manifest, "epochs=3", "num_workers=0", "cache_mb=0", "input.augment=false", "eval_every=0")
    train(uncached, tmp_path / "uncached", progress=False)
    a, b, c = (weights(tmp_path / n) for n in ("straight", "resumed", "uncached"))
    for k in a:
        assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]), k


def test_cached_validation_faces_give_the_same_metrics(tiny_manifest: Path, tmp_path: Path):
    """The validation faces are decoded once and reused every epoch: the same numbers as decoding them anew."""
    from fstmatch.train.data import build_train_data

    cached = cfg_for(tiny_manifest, "epochs=2", "cache_mb=64", "input.augment=false", "eval_every=1")
    uncached = cfg_for(tiny_manifest, "epochs=2", "cache_mb=0", "input.augment=false", "eval_every=1")
    train(cached, tmp_path / "cached", progress=False)
    train(uncached, tmp_path / "uncached", progress=False)

    def val_rows(run: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k.startswith("val_") or k == "step"}
                for r in read_jsonl(run / "log.jsonl") if "val_auc" in r]

    assert len(val_rows(tmp_path / "cached")) == 2
    assert val_rows(tmp_path / "cached") == val_rows(tmp_path / "uncached")
    data = build_train_data(cached)
    assert data.val_set is not None and len(data.val_set) == len(data.val_rows)
    data.val_set[0]
    assert data.val_set._cache  # the face stays for the next epoch


def test_negative_face_cache_is_refused_by_name(tiny_manifest: Path):
    with pytest.raises(UserError, match=r"cache_mb must be >= 0 .* got -1"):
        cfg_for(tiny_manifest, "cache_mb=-1")


def test_resume_refuses_changed_config_unless_forced(tiny_manifest: Path, tmp_path: Path):
    run = tmp_path / "r"
    cfg = cfg_for(tiny_manifest, "max_steps=2", "eval_every=0")
    train(cfg, run, progress=False)
    with pytest.raises(UserError, match="already holds a training run"):
        train(cfg, run, progress=False)
    changed = cfg_for(tiny_manifest, "max_steps=3", "eval_every=0", "optim.lr=0.5")
    with pytest.raises(UserError, match=r"changed config \(max_steps, optim.lr\)"):
        train(changed, run, resume=True, progress=False)
    train(changed, run, resume=True, force=True, progress=False)
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 3
    with pytest.raises(UserError, match="cannot resume"):
        train(cfg, tmp_path / "nothing", resume=True, progress=False)


def test_nan_loss_stops_naming_step_and_checkpoint(tiny_manifest: Path, tmp_path: Path, monkeypatch):
    from fstmatch.train import loop

    forward = loop.Objective.forward
    calls = {"n": 0}

    def poisoned(self, images, batch):
        calls["n"] += 1
        loss, terms = forward(self, images, batch)
        return (loss * float("nan"), terms) if calls["n"] == 3 else (loss, terms)

    monkeypatch.setattr(loop.Objective, "forward", poisoned)
    run = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 3 .*state.pt \(step 2\)"):
        train(cfg_for(tiny_manifest, "max_steps=5", "checkpoint_every=2", "eval_every=0"), run, progress=False)
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 2


def test_fstmatching_logs_all_four_terms(tiny_manifest: Path, tmp_path: Path):
    run = tmp_path / "fst"
    train(cfg_for(tiny_manifest, "model.role=fstmatching", "max_steps=3", "eval_every=0",
                  "model.interaction_weight=1.0"), run, progress=False)
    rows = [r for r in read_jsonl(run / "log.jsonl") if "loss" in r]
    assert all({"det", "source", "target", "interaction"} <= set(r) for r in rows)
    r = rows[-1]  # total = det + 0.5 source + 1.0 target - 1.0 interaction
    assert r["loss"] == pytest.approx(r["det"] + 0.5 * r["source"] + r["target"] - r["interaction"], rel=1e-4)
    from fstmatch.models import read_model_meta

    assert read_model_meta(run)["kwargs"]["num_identities"] == 8  # max id 7 + 1


def test_source_encoder_with_holdout_reports_identity_accuracy(tiny_manifest: Path, tmp_path: Path, capsys):
    run = tmp_path / "src"
    train(cfg_for(tiny_manifest, "model.role=source", "data.holdout=1", "epochs=2"), run, progress=False)
    log = read_jsonl(run / "log.jsonl")
    start = log[0]
    assert start["val_rows"] == 24 and start["train_rows"] == 48  # 1 of 3 frames held out per source video
    assert any("val_identity_acc" in r for r in log)
    out = tmp_path / "m.json"
    assert main(["test", "--data", str(tiny_manifest), "--checkpoint", str(run / "model.safetensors"), "--split",
                 "train", "--out", str(out), "--canvas", "48", "--no-progress"]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["role"] == "source" and 0.0 <= metrics["overall"]["identity_acc"] <= 1.0
    assert "real/raw" in metrics["by_method"]


def test_filters_that_empty_the_set_are_named(tiny_manifest: Path, tmp_path: Path, capsys):
    with pytest.raises(UserError, match="filter compressions"):
        train(cfg_for(tiny_manifest, "data.compressions=[c40]"), tmp_path / "x", progress=False)
    run = tmp_path / "det"
    train(cfg_for(tiny_manifest, "max_steps=1", "eval_every=0"), run, progress=False)
    rc = main(["test", "--data", str(tiny_manifest), "--checkpoint", str(run), "--methods", "Face2Face"])
    assert rc == 2 and "filter methods" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "none.jsonl"), "--model", "det", "--out", str(tmp_path / "y")]) == 2


def test_bad_checkpoints_are_refused(tiny_manifest: Path, tmp_path: Path, capsys):
    pickle = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2, 8)}, pickle)
    assert main(["test", "--data", str(tiny_manifest), "--checkpoint", str(pickle)]) == 2
    assert "safetensors" in capsys.readouterr().err
    # weights of an 8-identity encoder under metadata claiming 5 identities
    from safetensors.torch import load_file, save_file

    from fstmatch.models import create_model, save_model

    src = tmp_path / "src.safetensors"
    save_model(create_model("source", num_identities=8, width=8), src)
    meta = {"fstmatch": json.dumps({"format": 1, "name": "source", "kwargs": {"num_identities": 5, "width": 8}})}
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(src)), str(bad), metadata=meta)
    assert main(["test", "--data", str(tiny_manifest), "--checkpoint", str(bad), "--canvas", "48"]) == 2
    err = capsys.readouterr().err
    assert "fc.weight" in err and "8" in err and "5" in err


def test_fstmatching_bf16_loss_balance_and_test_heads(tiny_manifest: Path, tmp_path: Path):
    run = tmp_path / "fst16"
    train(cfg_for(tiny_manifest, "model.role=fstmatching", "max_steps=2", "eval_every=0", "amp=bf16",
                  "data.balance=loss"), run, progress=False)
    rows = [r for r in read_jsonl(run / "log.jsonl") if "loss" in r]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    out = tmp_path / "m.json"
    assert main(["test", "--data", str(tiny_manifest), "--checkpoint", str(run), "--out", str(out),
                 "--no-progress"]) == 0
    overall = json.loads(out.read_text())["overall"]
    assert {"auc", "video_auc", "source_acc", "target_acc"} <= set(overall)
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        train(cfg_for(tiny_manifest, "amp=fp16", "device=cpu"), tmp_path / "fp16", progress=False)


def test_predict_refuses_a_dataset_that_is_not_its_rows(tiny_manifest: Path):
    from fstmatch.data import FaceDataset, read_manifest
    from fstmatch.models import create_model
    from fstmatch.train.evaluate import predict

    rows = read_manifest(tiny_manifest)[:4]
    faces = FaceDataset(rows[:3], tiny_manifest.parent)
    with pytest.raises(ValueError, match=r"dataset has 3 items for 4 rows"):
        predict(create_model("resnet18", num_classes=2, width=8), rows, tiny_manifest.parent, role="det",
                dataset=faces, progress=False)
