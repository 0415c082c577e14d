"""generate() and ``fstmatch synth``: refusing bad input, resuming, determinism across workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fstmatch.synth.codec as codec
from fstmatch import ffpp
from fstmatch.cli import main
from fstmatch.errors import UserError
from fstmatch.synth import generate, iter_videos, read_video

# A very small set: 6 identities, 2 frames, two methods, raw only.
SMALL = ("pairs=[1,1,1]", "frames=2", "methods=[Deepfakes,FaceSwap]", "compressions=[raw]")
SET_SMALL = [arg for item in SMALL for arg in ("--set", item)]


def _decoded(root: Path) -> dict[str, np.ndarray]:
    return {f"{m}/{n}": read_video(p) for m, n, p in iter_videos(root, "raw")}


def test_refuses_foreign_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        generate(tmp_path, preset="micro", overrides=SMALL)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", str(tmp_path / "a"), "--preset", "huge"]) == 2
    assert "micro, small, tiny" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "b"), "--preset", "micro", "--set", "methods=[DeepFakes]"]) == 2
    assert "Face2Face" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    assert main(["synth", str(tmp_path / "c"), "--preset", "micro"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_writes_contact_sheet_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "set"
    assert main(["synth", str(out), "--preset", "micro", *SET_SMALL]) == 0
    text = capsys.readouterr().out
    assert str(out / "contact_sheet.png") in text and "identities 6" in text
    assert (out / "contact_sheet.png").stat().st_size > 1000
    # Same command again: nothing to render; another seed without --overwrite: refused.
    assert main(["synth", str(out), "--preset", "micro", *SET_SMALL]) == 0
    assert "0 rendered now" in capsys.readouterr().out
    assert main(["synth", str(out), "--preset", "micro", "--seed", "1"]) == 2


def test_interrupted_run_leaves_no_trusted_partial_file_and_resumes(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "set"
    real_encode = codec.encode_video
    calls = {"n": 0}

    def flaky(path, frames, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # die half-way through writing the 4th video
            Path(path).write_bytes(b"half a video")
            raise KeyboardInterrupt
        real_encode(path, frames, *args, **kwargs)

    monkeypatch.setattr(codec, "encode_video", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate(out, preset="micro", overrides=SMALL)
    written = list(iter_videos(out, "raw"))
    assert len(written) == 3
    assert all(read_video(p).shape[0] == 2 for _, _, p in written)  # every visible video is whole
    assert not list(out.rglob(".*tmp*"))
    monkeypatch.setattr(codec, "encode_video", real_encode)
    generate(out, preset="micro", overrides=SMALL)
    record = json.loads((out / "synth.json").read_text())
    assert record["complete"] and record["rendered"] == record["videos"] - 3 == 6 + 12 - 3


def test_workers_do_not_change_the_data(tmp_path: Path) -> None:
    one = generate(tmp_path / "one", preset="micro", seed=3, workers=1, overrides=SMALL)
    two = generate(tmp_path / "two", preset="micro", seed=3, workers=2, overrides=SMALL)
    a, b = _decoded(one), _decoded(two)
    assert a.keys() == b.keys() and len(a) == 18
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (one / "splits" / "train.json").read_text() == (two / "splits" / "train.json").read_text()
    other = _decoded(generate(tmp_path / "other", preset="micro", seed=4, overrides=SMALL))
    assert not np.array_equal(a["real/000"], other["real/000"])


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def test_every_compression_is_byte_identical_across_runs_and_workers(tmp_path: Path) -> None:
    """The same preset and seed give the same bytes at raw, c23 and c40, whatever the worker count
    (x264's macroblock tree made c23/c40 differ between processes: synth/codec.py)."""
    every = ("pairs=[1,1,1]", "frames=20", "height=144", "width=192", "methods=[Deepfakes,NeuralTextures]")
    one = _file_bytes(generate(tmp_path / "one", preset="micro", seed=5, workers=1, overrides=every))
    two = _file_bytes(generate(tmp_path / "two", preset="micro", seed=5, workers=2, overrides=every))
    assert one.keys() == two.keys()
    assert sum("/c40/videos/" in k for k in one) == sum("/c23/videos/" in k for k in one) == 6 + 2 * 6
    assert [k for k in one if one[k] != two[k]] == []


def test_refuses_to_start_without_the_disk_space_it_needs(tmp_path: Path, monkeypatch) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**5, 10**5))
    with pytest.raises(UserError, match=r"not enough free disk .* 0\.00 GB are free"):
        generate(tmp_path / "set", preset="micro", overrides=SMALL)
    assert not (tmp_path / "set" / "splits").exists()  # refused before writing anything


def test_overwrite_replaces_only_our_files(tmp_path: Path) -> None:
    out = generate(tmp_path / "set", preset="micro", seed=0, overrides=SMALL)
    (out / "mine.txt").write_text("keep")
    before = _decoded(out)
    generate(out, preset="micro", seed=1, overwrite=True, overrides=SMALL)
    assert (out / "mine.txt").read_text() == "keep"
    after = _decoded(out)
    assert any(k not in after or not np.array_equal(before[k], after[k]) for k in before)
    assert ffpp.read_splits(out / "splits")["train"]


def test_a_set_made_by_another_encoder_is_not_resumed_into(tmp_path: Path) -> None:
    """synth.json records the video encoder's settings: resuming a set made otherwise would mix
    two encoders' videos, so it is refused and the message says why."""
    out = generate(tmp_path / "set", preset="micro", overrides=SMALL)
    marker = out / "synth.json"
    record = json.loads(marker.read_text())
    record["encoder"] = {**record["encoder"], "x264_params": "mbtree=1"}
    marker.write_text(json.dumps(record))
    with pytest.raises(UserError, match=r"another video encoder.*--overwrite"):
        generate(out, preset="micro", overrides=SMALL)
