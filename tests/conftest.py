"""Shared fixtures. Expensive artefacts (a micro FST-Synth set, its prepared manifest) are built once
per test session and shared between pytest-xdist workers through a file lock."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock

# Tests run two workers on two cores: one thread each keeps them from fighting.
torch.set_num_threads(1)
os.environ.setdefault("FSTMATCH_NO_REEXEC", "1")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Callable[[Path], None]], Path]:
    """``shared_cache(name, build)`` -> a folder built once by ``build(folder)`` for all workers."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder shared by every xdist worker of this run

    def get(name: str, build: Callable[[Path], None]) -> Path:
        folder = root / f"shared-{name}"
        done = folder.with_suffix(".done")
        with FileLock(str(folder) + ".lock"):
            if not done.exists():
                folder.mkdir(parents=True, exist_ok=True)
                build(folder)
                done.touch()
        return folder

    return get


@pytest.fixture(scope="session")
def micro_synth(shared_cache) -> Path:
    """FST-Synth root generated with the ``micro`` preset (seed 0): the smallest complete FF++ tree."""
    from fstmatch.synth import generate

    return shared_cache("micro-synth", lambda d: generate(d / "data", preset="micro", seed=0, workers=1)) / "data"


@pytest.fixture(scope="session")
def micro_prepared(shared_cache, micro_synth: Path) -> Path:
    """``fstmatch prepare`` output of :func:`micro_synth` (4 frames a video); holds ``manifest.jsonl``."""
    from fstmatch.data import prepare

    return shared_cache(
        "micro-prepared", lambda d: prepare(micro_synth, d / "prep", frames_per_video=4, workers=1)
    ) / "prep"


#: The faces of a hand-made manifest: (method, video, det label, source, target).
ToyFace = tuple[str, str, int, int, int]


@pytest.fixture
def crop_manifest(tmp_path: Path) -> Callable[[list[ToyFace]], Path]:
    """Writes a hand-made manifest of random 96-px c23 test crops, one per face, with landmarks
    where both alignment conventions read them; returns a function ``make(faces) -> manifest path``."""
    import json

    import cv2
    import numpy as np

    pts = np.full((68, 2), 48.0)
    pts[36:42], pts[42:48] = [34, 40], [62, 40]  # eyes
    pts[30] = [48, 56]  # nose tip
    pts[48:51], pts[54:57] = [37, 70], [59, 70]  # mouth corners and the upper-lip points beside them
    landmarks = pts.tolist()

    def make(faces: list[ToyFace]) -> Path:
        root = tmp_path / "prep"
        (root / "crops").mkdir(parents=True)
        rng = np.random.default_rng(0)
        rows = []
        for method, video, label, source, target in faces:
            path = f"crops/{method}_{video}.png"
            cv2.imwrite(str(root / path), rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
            rows.append({"id": f"{method}/c23/{video}/0000", "path": path, "mask_path": None, "method": method,
                         "compression": "c23", "video": video, "frame": 0, "split": "test", "label": label,
                         "source": source, "target": target, "box": [0, 0, 96, 96], "landmarks": landmarks,
                         "score": None})
        (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return root / "manifest.jsonl"

    return make
