"""Writing and reading FF++-style H.264 videos with PyAV.

raw: libx264rgb CRF 0 (lossless RGB, decodes bit-exact); c23/c40: libx264, yuv420p, preset medium —
FaceForensics++'s CRF 23/40 — but with the macroblock tree (``mbtree``) off, and the CRF that gives
the same quality without it (:data:`X264_CRF`). One encoder thread: workers parallelise across videos.

Why mbtree is off: with it on, the x264 that PyAV ships (core 165) gave different bitstreams, and
different decoded pixels (up to 49/255), for the same frames encoded in different processes — 5
distinct outputs in 8 identical runs, although the stream's own SEI says ``threads=1
lookahead_threads=1 sliced_threads=0``. Input conversion is not the cause (the yuv420p frames were
identical, and feeding yuv420p directly varied as well), nor is the CPU (pinning one core still
varied). Turning off either the mbtree (its B-frame cost propagation) or B-frames made 8 of 8 runs
identical; mbtree only moves bits between frames, so it is the smaller departure from FF++'s
encoder.

Without the mbtree, the same CRF keeps more detail (the tree takes bits from blocks that later
frames do not reference). c23 uses the CRF that matches FF++'s encoder (CRF 23, mbtree on) in PSNR:
20 fake videos of the ``small`` preset (2026-12-07), mbtree on CRF 23 32.81 dB; off CRF 23 32.91 dB,
CRF 24 32.71 dB, so 23.5 (CRF 40 on: 28.05 dB; off CRF 41: 28.07 dB).

c40 is calibrated to FF++'s published *difficulty* instead, since the same CRF on FST-Synth's smooth
synthetic faces leaves more of the traces than on FF++'s footage: with CRF 41 the all-compression
detector of the ``laptop`` demo lost only 0.03 frame AUC at c40 (validation split), while FF++'s
detectors lose 0.10-0.14 (F3-Net's Xception 0.992 -> 0.893; DeepfakeBench's Xception c23 -> c40
0.964 -> 0.826). On the same data and training, c40 at CRF 41 / 43 / 44 / 45 lost 0.029 / 0.035 /
0.087 / 0.148; CRF 45 (mean PSNR to raw 27.5 dB on ``laptop``, 28.9 dB at CRF 41) is the one closest
to those figures' mean, 0.12 (docs/synth.md, "Calibrated to FF++'s difficulty").
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fstmatch.ffpp import CRF

#: x264's CRF, mbtree off: c23 matches FF++'s CRF 23 (``fstmatch.ffpp.CRF``, mbtree on) in PSNR; c40
#: matches FF++'s detection loss at c40 (module docstring).
X264_CRF: dict[str, float] = {"raw": CRF["raw"], "c23": 23.5, "c40": 45.0}
X264_PARAMS = "mbtree=0"  # c23/c40 only (determinism: see above)
#: What the encoder does beyond the synth config: recorded in synth.json, and a set made otherwise is
#: not resumed into (its videos would mix two encoders).
ENCODER = {"x264_crf": X264_CRF, "x264_params": X264_PARAMS}


def encode_video(path: str | Path, frames: np.ndarray, comp: str, fps: int = 25, preset: str = "medium") -> None:
    """Write ``frames`` uint8 ``(T, H, W, 3)`` RGB to ``path`` (``.mp4``) at compression ``comp``."""
    t, h, w, _ = frames.shape
    lossless = comp == "raw"
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264rgb" if lossless else "libx264", rate=Fraction(fps, 1))
        stream.width, stream.height = w, h
        stream.pix_fmt = "rgb24" if lossless else "yuv420p"
        stream.thread_count = 1
        stream.options = {"crf": str(X264_CRF[comp]), "preset": preset, "threads": "1"}
        if not lossless:
            stream.options = {**stream.options, "x264-params": X264_PARAMS}
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_video(path: str | Path) -> np.ndarray:
    """Decode every frame of ``path`` to uint8 ``(T, H, W, 3)`` RGB."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack(frames)
