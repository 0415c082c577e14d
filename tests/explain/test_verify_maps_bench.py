"""``benchmarks/verify_maps.py`` on a hand-made run: the three ways run; the hoist's maps are bit-identical."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from fstmatch.config import to_dict
from fstmatch.models import create_model, save_model
from fstmatch.train.config import InputConfig, TrainConfig

from ._benchmarks import load_benchmark


def test_the_three_ways_are_timed_and_compared(crop_manifest, tmp_path: Path, capsys) -> None:
    manifest = crop_manifest([("Deepfakes", "000_001", 1, 0, 1), ("real", "002", 0, 2, 2), ("FaceSwap", "003_004", 1, 3, 4)])
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    save_model(create_model("resnet18", num_classes=2, width=8), run / "model.safetensors")
    cfg = TrainConfig(input=InputConfig(canvas=32, augment=False))
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    load_benchmark("verify_maps").main([str(run), str(manifest), "--images", "3", "--grid", "4", "--budget", "2",
                                         "--repeats", "1", "--compression", "c23"])
    out = capsys.readouterr().out
    assert "3 maps a call" in out and "hoisted maps bit-identical to plain: True" in out, out
    diff = float(out.split("largest difference ")[1].split()[0])
    assert diff < 1e-4, out  # the stem masker: float rounding only
