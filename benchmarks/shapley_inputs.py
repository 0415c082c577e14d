"""Inputs shared by the Shapley benchmarks: a trained (or random-init) model and aligned test faces."""

from __future__ import annotations

from pathlib import Path

import torch


def build_model(seed: int = 0, checkpoint: Path | None = None) -> torch.nn.Module:
    """ResNet-18 w64 random init (seed), or the model saved at ``checkpoint`` (run dir or file)."""
    from fstmatch.models import create_model, load_model

    if checkpoint is not None:
        return load_model(checkpoint).eval()
    torch.manual_seed(seed)
    return create_model("resnet18", num_classes=2, width=64).eval()


def load_faces(manifest: Path, n: int, size: int, offset: int = 0, *, split: str = "test", fakes_only: bool = False,
               compression: str | None = None, key: str = "label") -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``n`` aligned faces of ``split``, each from a different video, first frames in manifest order,
    skipping the first ``offset`` of that sequence: fakes and reals alternating (fake first), or fakes
    only. Returns images (n, 3, size, size) in [0, 1], the rows' ``key`` (the explained class: label,
    source or target) (n,), row ids."""
    from fstmatch.data import Geometry, filter_rows, load_face, read_manifest

    root = manifest.parent if manifest.is_file() else manifest
    rows = filter_rows(read_manifest(manifest), split=split, compressions=compression)
    pools: dict[int, list] = {1: [], 0: []}
    seen: set[tuple] = set()
    for row in rows:
        video = (row["method"], row["video"])
        if video not in seen:
            seen.add(video)
            pools[int(row["label"])].append(row)
    if fakes_only:
        picked = pools[1][offset:offset + n]
    else:
        picked = [pools[1 - i % 2][i // 2] for i in range(offset, offset + n)]
    if len(picked) < n:
        raise SystemExit(f"only {len(picked)} faces of {n} available in {manifest} ({split})")
    faces = [torch.from_numpy(load_face(r, root, geometry=Geometry(canvas=size))[0]).permute(2, 0, 1) for r in picked]
    images = torch.stack(faces).float() / 255
    return images, torch.tensor([int(r[key]) for r in picked]), [r["id"] for r in picked]
