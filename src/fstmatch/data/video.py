"""Decoding the frames ``prepare`` keeps, with PyAV: K evenly spaced frames, stop after the last one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np


class VideoError(Exception):
    """The file cannot be decoded at all (empty, not a video, no video stream, unreadable)."""


def frame_indices(total: int, k: int) -> list[int]:
    """``k`` frame indices evenly spaced over ``total`` frames: the centres of ``k`` equal bins.

    ``k=1`` takes the middle frame; ``k >= total`` takes every frame.
    """
    if total <= 0:
        return []
    if k >= total:
        return list(range(total))
    return sorted({int((i + 0.5) * total / k) for i in range(k)})


@dataclass
class DecodedFrames:
    """Frames read from one video."""

    total: int  # frames the container declares (or counts)
    wanted: list[int]  # indices that were asked for
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # index -> uint8 RGB (H, W, 3)
    error: str | None = None  # why decoding stopped early, if it did


def _count_frames(path: Path) -> int:
    """Count video packets (no decoding) when the container does not declare its frame count."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def decode_frames(path: str | Path, k: int) -> DecodedFrames:
    """Decode ``k`` evenly spaced frames of ``path``; raises :class:`VideoError` if nothing decodes.

    Decoding stops after the last wanted frame, and only the kept frames are converted to RGB. A
    file that breaks part way (truncated, corrupt) returns the frames before the break with
    ``error`` set.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise VideoError("empty file (0 bytes)")
        container = av.open(str(path))
    except VideoError:
        raise
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise VideoError(f"cannot open as a video: {e}") from None
    with container:
        if not container.streams.video:
            raise VideoError("no video stream in the file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        total = int(stream.frames or 0)
        if total == 0:
            try:
                total = _count_frames(path)
            except av.FFmpegError as e:
                raise VideoError(f"cannot read the video stream: {e}") from None
        wanted = frame_indices(total, k)
        result = DecodedFrames(total=total, wanted=wanted)
        if not wanted:
            raise VideoError("the video has no frames")
        keep, last = set(wanted), wanted[-1]
        index = -1
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index in keep:
                    result.frames[index] = frame.to_ndarray(format="rgb24")
                if index >= last:
                    break
        except av.FFmpegError as e:
            result.error = f"decoding failed after frame {index}: {e}"
        if index < last and result.error is None:
            result.error = f"truncated: decoded {index + 1} of {total} declared frames"
    if not result.frames:
        raise VideoError(result.error or "no frame could be decoded")
    return result
