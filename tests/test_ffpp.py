import pytest

from fstmatch import ffpp
from fstmatch.errors import UserError


def test_labels_follow_the_papers_convention():
    fake = ffpp.parse_video_name("003_017", "Deepfakes")
    assert (fake.label, fake.source, fake.target) == (1, 3, 17)
    real = ffpp.parse_video_name("017", ffpp.REAL)
    assert (real.label, real.source, real.target) == (0, 17, 17)


@pytest.mark.parametrize("name", ["003-017", "3_x", "003_017_001", ""])
def test_bad_fake_names(name):
    with pytest.raises(ValueError):
        ffpp.parse_video_name(name, "FaceSwap")


def test_layout(tmp_path):
    assert ffpp.video_path(tmp_path, "real", "c23", "001") == tmp_path / "original_sequences/youtube/c23/videos/001.mp4"
    assert ffpp.gt_path(tmp_path, "FaceSwap", "raw", "001_002") == tmp_path / "manipulated_sequences/FaceSwap/raw/gt/001_002.npz"


def test_splits_round_trip_and_index(tmp_path):
    splits = {"train": [("000", "001")], "val": [("002", "003")], "test": [("004", "005")]}
    ffpp.write_splits(tmp_path, splits)
    assert ffpp.read_splits(tmp_path) == splits
    index = ffpp.video_split_index(splits)
    assert index["001_000"] == "train" and index["003"] == "val" and index["004_005"] == "test"


def test_missing_split_file(tmp_path):
    with pytest.raises(UserError, match="split file missing"):
        ffpp.read_splits(tmp_path)


def test_check_method_names_choices():
    with pytest.raises(UserError, match="Deepfakes, Face2Face"):
        ffpp.check_method("DeepFake")
