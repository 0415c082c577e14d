"""Writing and reading FF++-style H.264 videos with PyAV.

raw: libx264rgb CRF 0 (lossless RGB, decodes bit-exact); c23/c40: libx264 CRF 23/40, yuv420p —
the settings FaceForensics++ used. One encoder thread: workers parallelise across videos.
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
