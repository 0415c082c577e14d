"""The micro FST-Synth set as other stages see it: layout, splits, videos, ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fstmatch import ffpp
from fstmatch.config import load_config
from fstmatch.synth import SynthConfig, iter_videos, read_video


@pytest.fixture(scope="module")
def cfg() -> SynthConfig:
    return load_config(SynthConfig, kind="synth", preset="micro")


def test_layout_and_splits(micro_synth: Path, cfg: SynthConfig) -> None:
    splits = ffpp.read_splits(micro_synth / "splits")
    assert [len(splits[s]) for s in ffpp.SPLITS] == [2, 1, 1]
    ids = [i for pairs in splits.values() for pair in pairs for i in pair]
    assert sorted(ids) == [f"{i:03d}" for i in range(8)]  # every identity in exactly one pair
    index = ffpp.video_split_index(splits)
    for comp in ffpp.COMPRESSIONS:
        reals = sorted(p.stem for p in ffpp.video_dir(micro_synth, ffpp.REAL, comp).glob("*.mp4"))
        assert reals == sorted(ids)
        for method in ffpp.METHODS:
            fakes = sorted(p.stem for p in ffpp.video_dir(micro_synth, method, comp).glob("*.mp4"))
            assert fakes == sorted(f"{a}_{b}" for a, b in index_pairs(splits))
            for name in fakes:
                assert index[name] in ffpp.SPLITS
                assert ffpp.gt_path(micro_synth, method, comp, name).is_file()
    record = json.loads((micro_synth / "synth.json").read_text())
    assert record["complete"] and record["videos"] == 8 + 8 * len(ffpp.METHODS)
    assert (micro_synth / "contact_sheet.png").stat().st_size > 1000
    assert not list(micro_synth.rglob(".*tmp*")), "temporary files left behind"


def index_pairs(splits: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str]]:
    return [d for pairs in splits.values() for a, b in pairs for d in ((a, b), (b, a))]


def test_every_video_decodes_with_expected_shape(micro_synth: Path, cfg: SynthConfig) -> None:
    count = 0
    for comp in ffpp.COMPRESSIONS:
        for _, _, path in iter_videos(micro_synth, comp):
            frames = read_video(path)
            assert frames.shape == (cfg.frames, cfg.height, cfg.width, 3), path
            count += 1
    assert count == 3 * 48


def test_ground_truth_schema(micro_synth: Path, cfg: SynthConfig) -> None:
    t, h, w = cfg.frames, cfg.height, cfg.width
    for method in (ffpp.REAL, *ffpp.METHODS):
        for comp in ffpp.COMPRESSIONS:
            for path in sorted(ffpp.gt_dir(micro_synth, method, comp).glob("*.npz")):
                with np.load(path, allow_pickle=False) as gt:
                    labels = ffpp.parse_video_name(path.stem, method)
                    assert gt["landmarks"].dtype == np.float32 and gt["landmarks"].shape == (t, 68, 2)
                    assert str(gt["method"]) == method
                    assert (int(gt["source"]), int(gt["target"]), int(gt["label"])) == (
                        labels.source, labels.target, labels.label)
                    if method == ffpp.REAL:
                        assert "donor_mask" not in gt and "trace_mask" not in gt
                        continue
                    for key in ("donor_mask", "trace_mask"):
                        m = gt[key]
                        assert m.dtype == np.uint8 and m.shape == (t, h, w)
                        assert set(np.unique(m)) <= {0, 1}
                        assert m.any(axis=(1, 2)).all(), f"{key} empty in some frame of {path}"


def test_ground_truth_identical_across_compressions(micro_synth: Path) -> None:
    for method in ffpp.METHODS[:2]:
        name = sorted(ffpp.gt_dir(micro_synth, method, "raw").glob("*.npz"))[0].stem
        loaded = [np.load(ffpp.gt_path(micro_synth, method, c, name)) for c in ffpp.COMPRESSIONS]
        for key in ("landmarks", "donor_mask", "trace_mask"):
            assert all(np.array_equal(loaded[0][key], other[key]) for other in loaded[1:])


def test_psnr_decreases_with_compression(micro_synth: Path) -> None:
    """Mean PSNR against the raw (= rendered, bit-exact) frames: raw (infinite) > c23 > c40."""
    psnr: dict[str, list[float]] = {"c23": [], "c40": []}
    for method, name, raw_path in list(iter_videos(micro_synth, "raw"))[::4]:
        raw = read_video(raw_path).astype(np.float64)
        for comp in psnr:
            lossy = read_video(ffpp.video_path(micro_synth, method, comp, name)).astype(np.float64)
            mse = np.mean((raw - lossy) ** 2)
            psnr[comp].append(10 * np.log10(255**2 / mse))
    c23, c40 = np.mean(psnr["c23"]), np.mean(psnr["c40"])
    assert c23 > c40 + 3, (c23, c40)
    assert c40 > 20, "c40 should still show a face"
