"""The contact sheet: one row per method showing source, donor, fake, difference and masks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fstmatch import ffpp
from fstmatch.synth.codec import read_video
from fstmatch.synth.config import SynthConfig
from fstmatch.synth.manipulate import COARSE, FINE, SEAM
from fstmatch.utils.io import atomic_path

COLUMNS = ("source A (real)", "donor B (real)", "fake A_B", "|fake - A| x4",
           "donor blue; trace: fine red, coarse yellow, seam white")


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_contact_sheet(root: str | Path, cfg: SynthConfig, splits: dict[str, list[tuple[str, str]]],
                        comp: str = "raw") -> Path:
    """Write ``root/contact_sheet.png`` from the first training pair's videos at ``comp``
    (middle frame); returns its path."""
    root = Path(root)
    comp = comp if comp in cfg.compressions else cfg.compressions[0]
    a, b = splits["train"][0]
    t = cfg.frames // 2
    real_a = read_video(ffpp.video_path(root, ffpp.REAL, comp, a))[t]
    real_b = read_video(ffpp.video_path(root, ffpp.REAL, comp, b))[t]
    scale = max(1, round(240 / cfg.height))  # cells at least ~240 px tall
    rows = []
    for method in cfg.methods:
        name = ffpp.fake_name(a, b)
        fake = read_video(ffpp.video_path(root, method, comp, name))[t]
        with np.load(ffpp.gt_path(root, method, comp, name)) as gt:
            donor, trace = gt["donor_mask"][t], gt["trace_mask"][t]
            kind = gt["trace_kind"][t] if "trace_kind" in gt.files else trace
        diff = np.clip(np.abs(fake.astype(np.int16) - real_a.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
        masks = (0.5 * fake).astype(np.uint8)
        masks[donor > 0] = (0.5 * masks[donor > 0] + [0, 60, 127]).astype(np.uint8)
        masks[(trace > 0) & (kind & SEAM > 0)] = (235, 235, 235)
        masks[(trace > 0) & (kind & FINE > 0)] = (255, 40, 40)
        masks[(trace > 0) & (kind & COARSE > 0)] = (250, 220, 30)
        cells = [real_a, real_b, fake, diff, masks]
        cells = [cv2.resize(c, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for c in cells]
        cells[0] = _label(cells[0], method)
        rows.append(np.concatenate(cells, axis=1))
    sheet = np.concatenate(rows, axis=0)
    header = np.full((20, sheet.shape[1], 3), 255, np.uint8)
    cell_w = sheet.shape[1] // len(COLUMNS)
    for i, title in enumerate(COLUMNS):
        cv2.putText(header, title, (i * cell_w + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.concatenate([header, sheet], axis=0)
    path = root / "contact_sheet.png"
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
    return path
