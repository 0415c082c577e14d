"""Manifest reading, filters, hypothesis 2's paired/unpaired sets and the encoders' held-out frames."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fstmatch.data import filter_rows, h2_sets, holdout_frames, read_manifest, row_id
from fstmatch.errors import UserError


def _row(method: str, comp: str, video: str, frame: int, split: str) -> dict:
    a, _, b = video.partition("_")
    return {
        "id": row_id(method, comp, video, frame), "path": "x.png", "mask_path": None, "method": method,
        "compression": comp, "video": video, "frame": frame, "split": split, "label": int(method != "real"),
        "source": int(a), "target": int(b or a), "box": [0, 0, 10, 10], "landmarks": [[0, 0]] * 68, "score": 1.0,
    }


def _ffpp_rows(pairs_by_split: dict[str, list[tuple[str, str]]], frames=(0, 5, 9),
               methods=("Deepfakes", "FaceSwap"), comps=("c23",)) -> list[dict]:
    rows = []
    for split, pairs in pairs_by_split.items():
        for a, b in pairs:
            for comp in comps:
                for f in frames:
                    rows += [_row("real", comp, a, f, split), _row("real", comp, b, f, split)]
                    for m in methods:
                        rows += [_row(m, comp, f"{a}_{b}", f, split), _row(m, comp, f"{b}_{a}", f, split)]
    return rows


@pytest.fixture
def rows():
    train = [(f"{2 * i:03d}", f"{2 * i + 1:03d}") for i in range(6)]
    return _ffpp_rows({"train": train, "val": [("100", "101")], "test": [("200", "201")]})


def test_read_manifest_roundtrip_and_errors(tmp_path, rows):
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    assert read_manifest(tmp_path) == rows[:5] == read_manifest(path)
    with pytest.raises(UserError, match="manifest not found"):
        read_manifest(tmp_path / "nope")
    path.write_text('{"id": "x"}\n')
    with pytest.raises(UserError, match="lacks path"):
        read_manifest(path)
    path.write_text("not json\n")
    with pytest.raises(UserError, match=":1: not a JSON"):
        read_manifest(path)


def test_filter_rows_by_each_key(rows):
    assert {r["split"] for r in filter_rows(rows, split="val")} == {"val"}
    got = filter_rows(rows, split=["train", "test"], methods=["real", "FaceSwap"], compressions="c23", labels=1)
    assert got and all(r["method"] == "FaceSwap" and r["split"] != "val" for r in got)
    assert len(filter_rows(rows)) == len(rows)


def test_filter_rows_names_the_filter_that_emptied_the_set(rows):
    with pytest.raises(UserError, match=r"filter compressions=\['raw'\] left no rows \(values present: c23\)"):
        filter_rows(rows, split="train", compressions="raw")
    with pytest.raises(UserError, match="filter methods"):
        filter_rows(filter_rows(rows, methods="real"), methods="Face2Face")
    with pytest.raises(UserError, match="unknown method Fakes"):
        filter_rows(rows, methods=["Fakes"])
    with pytest.raises(UserError, match="no rows"):
        filter_rows([])


def test_h2_sets_equal_size_and_obey_their_definitions(rows):
    paired, unpaired = h2_sets(rows, seed=0)
    assert len(paired) == len(unpaired) > 0
    for subset in (paired, unpaired):
        assert {r["split"] for r in subset} == {"train"}
    # same reals in both; same number of fakes
    reals = [r["id"] for r in paired if r["label"] == 0]
    assert reals == [r["id"] for r in unpaired if r["label"] == 0]
    assert Counter(r["label"] for r in paired) == Counter(r["label"] for r in unpaired)
    real_ids = {r["video"] for r in paired if r["label"] == 0}
    for r in paired:
        if r["label"] == 1:  # both A and B of every paired fake A_B are among the reals
            assert set(r["video"].split("_")) <= real_ids
    for r in unpaired:
        if r["label"] == 1:  # neither of an unpaired fake's identities is among the reals
            assert not set(r["video"].split("_")) & real_ids
    # halves: 3 of the 6 training pairs give the reals
    assert len(real_ids) == 6
    # deterministic per seed, and the seed matters
    assert h2_sets(rows, seed=0) == (paired, unpaired)
    assert h2_sets(rows, seed=1) != (paired, unpaired)


def test_h2_sets_subsample_the_larger_fake_side(rows):
    # drop most FaceSwap fakes of some pairs: fake counts of the halves now differ
    thinned = [r for r in rows if not (r["method"] == "FaceSwap" and r["source"] in (0, 1, 2, 3) and r["frame"])]
    paired, unpaired = h2_sets(thinned, seed=3)
    assert len(paired) == len(unpaired)
    assert sum(r["label"] for r in paired) == sum(r["label"] for r in unpaired)


def test_h2_sets_need_two_training_pairs(rows):
    with pytest.raises(UserError, match="at least 2 training pairs"):
        h2_sets(_ffpp_rows({"train": [("000", "001")]}))


def test_holdout_one_frame_per_source_everywhere(rows):
    rows = rows + [dict(r, compression="raw", id=r["id"].replace("c23", "raw")) for r in rows]
    train, held = holdout_frames(rows, per_video=1)
    assert len(train) + len(held) == len(rows)
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    # one frame index per source identity: the middle one of 0, 5, 9 ...
    by_source = {}
    for r in held:
        by_source.setdefault(r["video"].split("_")[0], set()).add(r["frame"])
    assert all(frames == {5} for frames in by_source.values())
    # ... held out in the real video, every fake made from it and every compression
    assert {(r["method"], r["compression"]) for r in held if r["source"] == 0} == {
        (m, c) for m in ("real", "Deepfakes", "FaceSwap") for c in ("c23", "raw")
    }
    # every video keeps training frames
    assert {(r["method"], r["compression"], r["video"]) for r in train} == {
        (r["method"], r["compression"], r["video"]) for r in rows
    }


def test_holdout_fraction_and_bad_values(rows):
    many = _ffpp_rows({"train": [("000", "001")]}, frames=range(10), methods=("Deepfakes",))
    train, held = holdout_frames(many, per_video=0.3)
    assert sorted({r["frame"] for r in held}) == [1, 5, 8]
    assert len(held) == 3 * 4 and len(train) == 7 * 4
    for bad in (0, 1.0, -0.5, True):
        with pytest.raises(UserError, match="per_video"):
            holdout_frames(many, per_video=bad)
