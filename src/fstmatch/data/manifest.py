"""The prepared-frames manifest (``OUT/manifest.jsonl``, docs/INTERFACES.md) and the row sets built
from it: filters, hypothesis 2's paired / unpaired training sets (docs/method.md §4) and the held-out frames of
the encoders for analysis (docs/method.md §5)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fstmatch.errors import UserError
from fstmatch.ffpp import COMPRESSIONS, METHODS, REAL, SPLITS

Row = dict[str, Any]

#: Keys every manifest row has (docs/INTERFACES.md).
ROW_KEYS: tuple[str, ...] = (
    "id", "path", "mask_path", "method", "compression", "video", "frame", "split",
    "label", "source", "target", "box", "landmarks", "score",
)


def row_id(method: str, compression: str, video: str, frame: int) -> str:
    """The manifest ``id``: ``"{method}/{compression}/{video}/{frame:04d}"``."""
    return f"{method}/{compression}/{video}/{frame:04d}"


def sort_key(row: Row) -> tuple[str, str, str, int]:
    """Manifest order: (method, compression, video, frame)."""
    return (row["method"], row["compression"], row["video"], int(row["frame"]))


def read_manifest(path: str | Path) -> list[Row]:
    """Rows of a manifest file (or of ``path/manifest.jsonl`` when ``path`` is a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise UserError(f"manifest not found: {path} (run `fstmatch prepare ROOT OUT` to make OUT/manifest.jsonl)")
    rows: list[Row] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{path}:{n}: not a JSON object") from None
            missing = [k for k in ROW_KEYS if k not in row] if isinstance(row, dict) else list(ROW_KEYS)
            if missing:
                raise UserError(f"{path}:{n}: manifest row lacks {', '.join(missing)}")
            rows.append(row)
    return rows


def _as_set(name: str, values: str | int | Iterable[Any] | None, allowed: Sequence[Any] | None) -> set[Any] | None:
    if values is None:
        return None
    chosen = {values} if isinstance(values, (str, int)) else set(values)
    if allowed is not None:
        unknown = sorted(str(v) for v in chosen - set(allowed))
        if unknown:
            raise UserError(f"unknown {name} {', '.join(unknown)}; choose from: {', '.join(map(str, allowed))}")
    return chosen


def filter_rows(
    rows: Sequence[Row],
    split: str | Iterable[str] | None = None,
    methods: str | Iterable[str] | None = None,
    compressions: str | Iterable[str] | None = None,
    labels: int | Iterable[int] | None = None,
) -> list[Row]:
    """Rows matching every given filter (``None`` = no filter; ``methods`` may include ``"real"``).

    Raises :class:`UserError` naming the filter that left no rows, and the values that were there.
    """
    filters = [
        ("split", "split", _as_set("split", split, SPLITS)),
        ("methods", "method", _as_set("method", methods, (REAL, *METHODS))),
        ("compressions", "compression", _as_set("compression", compressions, COMPRESSIONS)),
        ("labels", "label", _as_set("label", labels, (0, 1))),
    ]
    if not rows:
        raise UserError("the manifest has no rows")
    out = list(rows)
    for name, key, wanted in filters:
        if wanted is None:
            continue
        kept = [r for r in out if r[key] in wanted]
        if not kept:
            present = sorted({str(r[key]) for r in out})
            raise UserError(
                f"filter {name}={sorted(map(str, wanted))} left no rows (values present: {', '.join(present)})"
            )
        out = kept
    return out


def _pair_of(video: str) -> frozenset[str]:
    """The unordered id pair of a fake ``A_B``."""
    a, b = video.split("_")
    return frozenset((a, b))


def h2_sets(rows: Sequence[Row], seed: int = 0) -> tuple[list[Row], list[Row]]:
    """Hypothesis 2's training sets ``(paired, unpaired)`` (docs/method.md §4), equal in size.

    Only ``split == "train"`` rows are used. The training pairs {A, B} (read from the fake names
    ``A_B`` / ``B_A``) are shuffled with ``seed`` and halved into P1 and P2. Both sets share the
    same reals: the frames of the real videos of P1's ids. *paired* adds the fakes of P1 pairs
    (kept only when both their real videos A and B are among the reals); *unpaired* adds the fakes
    of P2 pairs, none of whose ids is among the reals. The larger fake set is subsampled (seeded,
    uniformly over frames) to the size of the smaller, so both sets have the same number of frames
    and the same real/fake balance. Rows come back in manifest order.
    """
    train = [r for r in rows if r["split"] == "train"]
    fakes = [r for r in train if r["label"] == 1]
    pairs = sorted({_pair_of(r["video"]) for r in fakes}, key=sorted)
    if len(pairs) < 2:
        raise UserError(f"hypothesis 2 needs at least 2 training pairs with fakes, found {len(pairs)}")
    rng = random.Random(seed)
    rng.shuffle(pairs)
    p1, p2 = set(pairs[: len(pairs) // 2]), set(pairs[len(pairs) // 2 :])
    p1_ids = {i for p in p1 for i in p}
    reals = [r for r in train if r["label"] == 0 and r["video"] in p1_ids]
    real_videos = {r["video"] for r in reals}
    paired_fakes = [r for r in fakes if _pair_of(r["video"]) in p1 and _pair_of(r["video"]) <= real_videos]
    # an id that occurs in several pairs (not in FF++) could sit in both halves: exclude such fakes
    unpaired_fakes = [r for r in fakes if _pair_of(r["video"]) in p2 and not (_pair_of(r["video"]) & p1_ids)]
    n = min(len(paired_fakes), len(unpaired_fakes))
    if not reals or n == 0:
        raise UserError(
            f"hypothesis 2 sets are empty: {len(reals)} real, {len(paired_fakes)} paired fake and "
            f"{len(unpaired_fakes)} unpaired fake training frames"
        )
    paired_fakes = _subsample(paired_fakes, n, rng)
    unpaired_fakes = _subsample(unpaired_fakes, n, rng)
    return sorted(reals + paired_fakes, key=sort_key), sorted(reals + unpaired_fakes, key=sort_key)


def _subsample(rows: list[Row], n: int, rng: random.Random) -> list[Row]:
    return rows if len(rows) == n else rng.sample(rows, n)


def holdout_frames(rows: Sequence[Row], per_video: int | float = 1) -> tuple[list[Row], list[Row]]:
    """Split rows into ``(train_rows, heldout_rows)`` for the encoders used in analysis (docs/method.md §5).

    Frames are grouped by source video A: the real ``A`` and every fake ``A_*`` of every method
    and compression share their frames' pixels (fake ``A_B`` frame i is made from A's frame i),
    so a frame index held out in one is held out in all of them. Per group, ``per_video`` frame
    indices (an int >= 1, or a fraction in (0, 1) of the group's frame indices, at least one) are
    chosen evenly spaced among the group's sorted frame indices; every row with such an index is
    held out. Deterministic; both lists in the input order.
    """
    if isinstance(per_video, bool) or not (
        (isinstance(per_video, int) and per_video >= 1) or (isinstance(per_video, float) and 0 < per_video < 1)
    ):
        raise UserError(f"per_video must be an integer >= 1 or a fraction in (0, 1), got {per_video!r}")
    frames: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        frames[r["video"].split("_")[0]].add(int(r["frame"]))
    held: dict[str, set[int]] = {}
    for group, idx in frames.items():
        ordered = sorted(idx)
        k = per_video if isinstance(per_video, int) else max(1, round(per_video * len(ordered)))
        k = min(k, len(ordered))
        # evenly spaced positions, centred in k equal bins (k=1 -> the middle frame)
        held[group] = {ordered[int((i + 0.5) * len(ordered) / k)] for i in range(k)}
    train, heldout = [], []
    for r in rows:
        (heldout if int(r["frame"]) in held[r["video"].split("_")[0]] else train).append(r)
    return train, heldout
