"""FaceForensics++ layout, names and labels (docs/method.md §1), shared by ``synth`` (writes) and ``data``
(reads).

Layout under a root::

    original_sequences/youtube/<comp>/videos/<A>.mp4
    manipulated_sequences/<Method>/<comp>/videos/<A>_<B>.mp4
    <comp folder>/gt/<name>.npz          (FST-Synth ground truth, beside videos/)
    splits/{train,val,test}.json         (lists of [A, B] pairs of three-digit ids; without it,
                                          the official FF++ splits shipped with fstmatch)

Labels, as the paper and the reference code use them (FF++'s README names them the other way
round): fake ``A_B`` has source label A (the video the fake frame was made from) and target
label B (the donor); a real ``A`` has source = target = A. Identity labels are the integer
value of the id ("007" -> 7).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fstmatch.errors import UserError

METHODS: tuple[str, ...] = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
COMPRESSIONS: tuple[str, ...] = ("raw", "c23", "c40")
SPLITS: tuple[str, ...] = ("train", "val", "test")
REAL = "real"
#: libx264 constant rate factor per FF++ compression level (raw uses libx264rgb, lossless).
CRF: dict[str, int] = {"raw": 0, "c23": 23, "c40": 40}


def check_method(method: str) -> str:
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose from: {', '.join(METHODS)}")
    return method


def check_compression(comp: str) -> str:
    if comp not in COMPRESSIONS:
        raise UserError(f"unknown compression {comp!r}; choose from: {', '.join(COMPRESSIONS)}")
    return comp


def video_dir(root: str | Path, method: str, comp: str) -> Path:
    """Folder of the ``.mp4`` files of ``method`` ("real" or an FF++ method) at ``comp``."""
    root = Path(root)
    if method == REAL:
        return root / "original_sequences" / "youtube" / comp / "videos"
    return root / "manipulated_sequences" / method / comp / "videos"


def gt_dir(root: str | Path, method: str, comp: str) -> Path:
    """Folder of FST-Synth's ground-truth ``.npz`` files, beside ``videos/``."""
    return video_dir(root, method, comp).parent / "gt"


def video_path(root: str | Path, method: str, comp: str, name: str) -> Path:
    return video_dir(root, method, comp) / f"{name}.mp4"


def gt_path(root: str | Path, method: str, comp: str, name: str) -> Path:
    return gt_dir(root, method, comp) / f"{name}.npz"


def fake_name(a: str, b: str) -> str:
    return f"{a}_{b}"


@dataclass(frozen=True)
class VideoLabels:
    """Labels of one video from its name (docs/method.md §1)."""

    method: str  # "real" or an FF++ method
    name: str  # file stem, "A" or "A_B"
    label: int  # det label: 0 real, 1 fake
    source: int  # identity the frames come from (A)
    target: int  # donor identity (B for fakes, A for reals)
    source_id: str  # "A" as written
    target_id: str  # "B" as written ("A" for reals)


def parse_video_name(name: str, method: str) -> VideoLabels:
    """Labels from a file stem; raises ``ValueError`` when the name does not parse."""
    if method == REAL:
        if not name.isdigit():
            raise ValueError(f"real video name {name!r} is not a numeric id")
        return VideoLabels(REAL, name, 0, int(name), int(name), name, name)
    parts = name.split("_")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"fake video name {name!r} is not of the form <A>_<B> with numeric ids")
    a, b = parts
    return VideoLabels(method, name, 1, int(a), int(b), a, b)


def write_splits(out_dir: str | Path, splits: dict[str, list[tuple[str, str]]]) -> None:
    """Write ``train/val/test.json`` in the official format (lists of ``[A, B]``)."""
    from fstmatch.utils.io import atomic_write_json

    for split in SPLITS:
        atomic_write_json(Path(out_dir) / f"{split}.json", [list(p) for p in splits.get(split, [])], indent=None)


def _pairs(text: str, where: str) -> list[tuple[str, str]]:
    try:
        return [(str(a), str(b)) for a, b in json.loads(text)]
    except (json.JSONDecodeError, TypeError, ValueError):
        raise UserError(f"split file {where} is not a JSON list of [A, B] pairs") from None


def read_splits(split_dir: str | Path) -> dict[str, list[tuple[str, str]]]:
    """Read the official split files; a missing file or bad content raises :class:`UserError`."""
    split_dir = Path(split_dir)
    out: dict[str, list[tuple[str, str]]] = {}
    for split in SPLITS:
        path = split_dir / f"{split}.json"
        if not path.is_file():
            raise UserError(f"split file missing: {path} (expected {', '.join(s + '.json' for s in SPLITS)})")
        out[split] = _pairs(path.read_text("utf-8"), str(path))
    return out


#: Where the shipped copy of the official splits comes from.
OFFICIAL_SPLITS_SOURCE = "github.com/ondyari/FaceForensics, dataset/splits/{train,val,test}.json"


def official_splits() -> dict[str, list[tuple[str, str]]]:
    """The official FF++ splits (360 / 70 / 70 pairs of the 1000 original ids), shipped with
    fstmatch as package data (``fstmatch/ffpp_splits/``, copied from :data:`OFFICIAL_SPLITS_SOURCE`)."""
    folder = resources.files("fstmatch") / "ffpp_splits"
    return {split: _pairs((folder / f"{split}.json").read_text("utf-8"), f"{split}.json (shipped)")
            for split in SPLITS}


def video_split_index(splits: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    """Map every video stem (A, B, A_B, B_A) to its split: a pair puts all four into one split."""
    index: dict[str, str] = {}
    for split, pairs in splits.items():
        for a, b in pairs:
            for name in (a, b, fake_name(a, b), fake_name(b, a)):
                index[name] = split
    return index
