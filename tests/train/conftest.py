"""A tiny hand-made prepared set for the training tests: 64 px crops whose fakes carry a visible
checkerboard artefact and whose identities differ in colour, so a few steps already learn."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

METHODS = ("Deepfakes", "FaceSwap")
COMPS = ("raw", "c23")
PAIRS = {"train": [("000", "001"), ("002", "003")], "val": [("004", "005")], "test": [("006", "007")]}
FRAMES = 3
SIZE = 64


def _landmarks() -> np.ndarray:
    """68 points, a plausible frontal layout in a 64 px crop (only the 5 alignment points matter)."""
    pts = np.zeros((68, 2))
    pts[:] = (32, 32)
    pts[36:42] = (22, 27)  # left eye
    pts[42:48] = (42, 27)  # right eye
    pts[30] = (32, 37)  # nose tip
    pts[48] = (24, 46)  # mouth corners
    pts[54] = (40, 46)
    return pts


def _image(identity: int, frame: int, fake: bool, comp: str, rng: np.random.Generator) -> np.ndarray:
    colour = np.array([(identity * 67) % 256, (identity * 151 + 40) % 256, (identity * 29 + 90) % 256], np.float32)
    img = rng.normal(110, 20, size=(SIZE, SIZE, 3)).astype(np.float32)
    cv2.ellipse(img, (32, 34), (17, 22), 0, 0, 360, colour.tolist(), -1)
    if fake:
        yy, xx = np.mgrid[0:16, 0:16]
        board = ((yy // 2 + xx // 2) % 2 * 120 - 60)[..., None]
        img[26:42, 24:40] += board
    if comp == "c23":
        img = cv2.GaussianBlur(img, (3, 3), 0.8)
    img += frame  # frames differ slightly
    return np.clip(img, 0, 255).astype(np.uint8)


def make_manifest(out: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    lm = _landmarks().tolist()
    for split, pairs in PAIRS.items():
        for a, b in pairs:
            videos = [("real", a), ("real", b)] + [(m, f"{x}_{y}") for m in METHODS for x, y in ((a, b), (b, a))]
            for comp in COMPS:
                for method, video in videos:
                    src, tgt = (int(video), int(video)) if method == "real" else map(int, video.split("_"))
                    for frame in range(FRAMES):
                        rid = f"{method}/{comp}/{video}/{frame:04d}"
                        rel = f"crops/{rid}.png"
                        (out / rel).parent.mkdir(parents=True, exist_ok=True)
                        img = _image(src, frame, method != "real", comp, rng)
                        cv2.imwrite(str(out / rel), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
                        rows.append({
                            "id": rid, "path": rel, "mask_path": None, "method": method, "compression": comp,
                            "video": video, "frame": frame, "split": split, "label": int(method != "real"),
                            "source": src, "target": tgt, "box": [0, 0, SIZE, SIZE], "landmarks": lm, "score": 1.0,
                        })
    rows.sort(key=lambda r: (r["method"], r["compression"], r["video"], r["frame"]))
    path = out / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def tiny_manifest(shared_cache) -> Path:
    """manifest.jsonl of the tiny set (train 72 rows, val 36, test 36)."""
    return shared_cache("train-tiny", make_manifest) / "manifest.jsonl"
