"""A toy prepared manifest (random crops, hand-placed landmarks, masks) and tiny models, so verify's
pieces are tested without FST-Synth or training."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

METHODS = ("Deepfakes", "FaceSwap")
PAIRS = (("000", "001"), ("002", "003"))
FRAMES = (0, 1, 2)
CROP = 48


def _landmarks() -> list[list[float]]:
    pts = np.full((68, 2), 24.0)
    pts[36:42] = (17, 19)  # left eye
    pts[42:48] = (31, 19)  # right eye
    pts[30] = (24, 27)  # nose tip
    pts[48] = (19, 34)  # mouth corners
    pts[54] = (29, 34)
    return pts.tolist()


def _row(root: Path, rng: np.random.Generator, method: str, comp: str, video: str, frame: int) -> dict:
    label = 0 if method == "real" else 1
    a, _, b = video.partition("_")
    rid = f"{method}/{comp}/{video}/{frame:04d}"
    path = Path("crops") / method / comp / video / f"{frame:04d}.png"
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / path), rng.integers(0, 256, (CROP, CROP, 3), dtype=np.uint8))
    mask_path = None
    if label:
        mask = np.zeros((CROP, CROP, 3), np.uint8)
        mask[14:38, 12:36, 2] = 255  # R (cv2 writes BGR): donor = the inner face
        mask[14:38, 12, 1] = mask[14:38, 35, 1] = 255  # G: trace = the blend seams
        mask_path = Path("masks") / method / comp / video / f"{frame:04d}.png"
        (root / mask_path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / mask_path), mask)
    return {
        "id": rid, "path": str(path), "mask_path": None if mask_path is None else str(mask_path),
        "method": method, "compression": comp, "video": video, "frame": frame, "split": "train",
        "label": label, "source": int(a), "target": int(b or a), "box": [0, 0, CROP, CROP],
        "landmarks": _landmarks(), "score": None,
    }


@pytest.fixture(scope="session")
def toy_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two methods, two training pairs, three frames per video at raw/c23/c40; the c40 version of
    ``FaceSwap/000_001`` frame 1 is missing (hypothesis 3 must skip it)."""
    root = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    rows = []
    for comp in ("raw", "c23", "c40"):
        for a, b in PAIRS:
            for video, method in [(a, "real"), (b, "real")] + [(f"{x}_{y}", m) for m in METHODS
                                                                 for x, y in ((a, b), (b, a))]:
                for frame in FRAMES:
                    if (method, comp, video, frame) == ("FaceSwap", "c40", "000_001", 1):
                        continue
                    rows.append(_row(root, rng, method, comp, video, frame))
    rows.sort(key=lambda r: (r["method"], r["compression"], r["video"], r["frame"]))
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl"


@pytest.fixture(scope="session")
def toy_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Untrained width-4 models for every role, saved as run directories."""
    import torch

    from fstmatch.models import create_model, save_model

    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    out = {}
    for role, name, kw in (("source", "source", {"num_identities": 4}), ("target", "target", {"num_identities": 4}),
                           ("det", "det", {}), ("det_paired", "det", {}), ("det_unpaired", "det", {})):
        save_model(create_model(name, width=4, **kw), root / role / "model.safetensors")
        out[role] = str(root / role)
    return out
