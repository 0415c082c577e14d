"""Bad input to ``prepare``: every case is recorded in failures.jsonl and the run goes on; CLI exit codes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from fstmatch import ffpp
from fstmatch.cli import main
from fstmatch.data import prepare, read_manifest
from fstmatch.data.video import decode_frames
from fstmatch.errors import UserError
from fstmatch.utils.io import read_jsonl

REAL_DIR = "original_sequences/youtube/c23/videos"


def _encode(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def bad_root(micro_synth, tmp_path_factory) -> Path:
    """A c23-only FF++ tree from micro's videos plus one broken input of every kind."""
    root = tmp_path_factory.mktemp("bad") / "root"
    shutil.copytree(micro_synth / "splits", root / "splits")
    ids = sorted(p.stem for p in ffpp.video_dir(micro_synth, "real", "c23").glob("*.mp4"))
    real_dir = ffpp.video_dir(root, "real", "c23")
    real_dir.mkdir(parents=True)
    good = ffpp.video_path(micro_synth, "real", "c23", ids[0])
    for i in ids[:2]:
        shutil.copy(ffpp.video_path(micro_synth, "real", "c23", i), real_dir)
    (real_dir / f"{ids[2]}.mp4").write_bytes(b"")  # zero bytes
    data = good.read_bytes()
    (real_dir / f"{ids[3]}.mp4").write_bytes(data[: len(data) // 2])  # truncated
    (real_dir / f"{ids[4]}.mp4").write_text("this is not a video\n")  # not a video
    frames = decode_frames(good, 100).frames
    blank = np.full_like(frames[0], 128)
    # no face in frames 2 and 3 (of the 4 taken from 6: 0, 2, 3, 5), then none at all
    _encode(real_dir / f"{ids[5]}.mp4", [blank if i in (2, 3) else f for i, f in sorted(frames.items())])
    _encode(real_dir / f"{ids[6]}.mp4", [blank] * len(frames))
    shutil.copy(good, real_dir / "999.mp4")  # not in the split files
    fake = next(ffpp.video_dir(micro_synth, "Deepfakes", "c23").glob("*.mp4"))
    fake_dir = ffpp.video_dir(root, "Deepfakes", "c23")
    fake_dir.mkdir(parents=True)
    shutil.copy(fake, fake_dir)
    shutil.copy(fake, fake_dir / "abc.mp4")  # fake name does not parse
    # a "videos" that is a file: the folder cannot be listed
    ffpp.video_dir(root, "FaceSwap", "c23").parent.mkdir(parents=True)
    ffpp.video_dir(root, "FaceSwap", "c23").write_text("")
    ffpp.video_dir(root, "Face2Face", "c23").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def bad_out(bad_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad-out") / "prep"
    real_scandir = os.scandir
    denied = str(ffpp.video_dir(bad_root, "Face2Face", "c23"))

    def scandir(path):  # tests run as root, where chmod 000 does not stop reading
        if str(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("fstmatch.data.preprocess.os.scandir", scandir)
        prepare(bad_root, out, frames_per_video=4, progress=False)
    return out


def _reasons(out: Path) -> dict[str, list[dict]]:
    by_video: dict[str, list[dict]] = {}
    for f in read_jsonl(out / "failures.jsonl"):
        by_video.setdefault(f["video"], []).append(f)
    return by_video


def _only(out: Path, video: str) -> dict:
    found = _reasons(out).get(video, [])
    assert len(found) == 1, f"{video}: {found}"
    return found[0]


def _ids(root: Path) -> list[str]:
    return sorted({pid for pair in ffpp.read_splits(root / "splits").values() for p in pair for pid in p})


def test_good_videos_are_still_prepared(bad_root, bad_out):
    rows = read_manifest(bad_out)
    ids = _ids(bad_root)
    videos = {(r["method"], r["video"]) for r in rows}
    assert {("real", ids[0]), ("real", ids[1]), ("real", ids[5])} <= videos
    assert sum(r["method"] == "Deepfakes" for r in rows) == 4


def test_zero_byte_truncated_and_non_video_files(bad_root, bad_out):
    ids = _ids(bad_root)
    assert "empty file" in _only(bad_out, f"{REAL_DIR}/{ids[2]}.mp4")["reason"]
    assert "cannot open" in _only(bad_out, f"{REAL_DIR}/{ids[3]}.mp4")["reason"]
    assert "cannot open" in _only(bad_out, f"{REAL_DIR}/{ids[4]}.mp4")["reason"]


def test_no_face_in_some_or_all_frames(bad_root, bad_out):
    ids = _ids(bad_root)
    some = _only(bad_out, f"{REAL_DIR}/{ids[5]}.mp4")
    assert some["reason"] == "no face detected in 2 of 4 frames" and some["frames"] == [2, 3]
    assert sorted(r["frame"] for r in read_manifest(bad_out) if r["video"] == ids[5]) == [0, 5]
    assert _only(bad_out, f"{REAL_DIR}/{ids[6]}.mp4")["reason"] == "no face detected in 4 of 4 frames"


def test_bad_names_missing_splits_and_unreadable_folders(bad_out):
    fake_dir = "manipulated_sequences/Deepfakes/c23/videos"
    assert _only(bad_out, f"{fake_dir}/abc.mp4")["reason"].startswith("name does not parse")
    assert _only(bad_out, f"{REAL_DIR}/999.mp4")["reason"] == "video not in the split files"
    assert _only(bad_out, "manipulated_sequences/FaceSwap/c23/videos")["reason"].startswith("unreadable directory")
    assert "Permission denied" in _only(bad_out, "manipulated_sequences/Face2Face/c23/videos")["reason"]


def test_cli_exit_codes(bad_root, bad_out, tmp_path, capsys):
    # resumes bad_out (nothing left to do): 0 by default, 1 with --strict
    assert main(["prepare", str(bad_root), str(bad_out), "--frames-per-video", "4"]) == 0
    assert main(["prepare", str(bad_root), str(bad_out), "--frames-per-video", "4", "--strict"]) == 1
    capsys.readouterr()
    # not an FF++ tree: 2, saying what was expected
    (tmp_path / "flat").mkdir()
    assert main(["prepare", str(tmp_path / "flat"), str(tmp_path / "o1")]) == 2
    assert "expected an FF++ layout" in capsys.readouterr().err
    # nothing could be prepared: 2, failures still written
    empty = tmp_path / "broken"
    (empty / REAL_DIR).mkdir(parents=True)
    shutil.copytree(bad_root / "splits", empty / "splits")
    (empty / REAL_DIR / f"{_ids(bad_root)[0]}.mp4").write_bytes(b"")
    assert main(["prepare", str(empty), str(tmp_path / "o2")]) == 2
    assert "nothing could be prepared" in capsys.readouterr().err
    assert len(read_jsonl(tmp_path / "o2" / "failures.jsonl")) == 1
    # a splits/ folder missing a file and a bad predictor are user errors too (a tree without
    # splits/ at all uses the shipped official splits: test_prepare.py)
    (empty / "splits" / "val.json").unlink()
    assert main(["prepare", str(empty), str(tmp_path / "o3")]) == 2
    assert "split file missing" in capsys.readouterr().err
    with pytest.raises(UserError, match="predictor not found"):
        prepare(bad_root, tmp_path / "o4", predictor=tmp_path / "nope.dat", progress=False)
