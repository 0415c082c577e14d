"""Writing and reading FF++-style H.264 videos with PyAV.

raw: libx264rgb CRF 0 (lossless RGB, decodes bit-exact); c23/c40: libx264 CRF 23/40, yuv420p —
the settings FaceForensics++ used, but for one: the macroblock tree (``mbtree``) is off. One encoder
thread: workers parallelise across videos.

Why mbtree is off: with it on, the x264 that PyAV ships (core 165) gave different bitstreams, and
different decoded pixels (up to 49/255), for the same frames encoded in different processes — 5
distinct outputs in 8 identical runs, although the stream's own SEI says ``threads=1
lookahead_threads=1 sliced_threads=0``. Input conversion is not the cause (the yuv420p frames were
identical, and feeding yuv420p directly varied as well), nor is the CPU (pinning one core still
varied). Turning off either the mbtree (its B-frame cost propagation) or B-frames made 8 of 8 runs
identical; mbtree only moves bits between frames, so it is the smaller departure from FF++'s
encoder. ``docs/synth.md`` ("Reproducibility") has the measurements.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fstmatch.ffpp import CRF


def encode_video(path: str | Path, frames: np.ndarray, comp: str, fps: int = 25, preset: str = "medium") -> None:
    """Write ``frames`` uint8 ``(T, H, W, 3)`` RGB to ``path`` (``.mp4``) at compression ``comp``."""
    t, h, w, _ = frames.shape
    lossless = comp == "raw"
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264rgb" if lossless else "libx264", rate=Fraction(fps, 1))
        stream.width, stream.height = w, h
        stream.pix_fmt = "rgb24" if lossless else "yuv420p"
        stream.thread_count = 1
        stream.options = {"crf": str(CRF[comp]), "preset": preset, "threads": "1"}
        if not lossless:
            stream.options = {**stream.options, "x264-params": "mbtree=0"}  # determinism: see above
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
