"""The FST-Synth config (one dataclass; presets in ``fstmatch/presets/synth/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass

from fstmatch.errors import UserError
from fstmatch.ffpp import COMPRESSIONS, METHODS


@dataclass
class SynthConfig:
    """What to generate. Sizes in pixels, times in frames.

    ``pairs`` gives the number of identity pairs per split (train, val, test); the dataset has
    ``2 * sum(pairs)`` identities, each with one real video, and every pair (A, B) adds the fakes
    A_B and B_A for every method (FF++: 360/70/70 pairs, 1000 identities).
    """

    # tuple[int, ...] rather than tuple[int, int, int]: see the length check below
    pairs: tuple[int, ...] = (6, 1, 1)
    frames: int = 20
    height: int = 144
    width: int = 192
    fps: int = 25
    face_size: float = 0.42  # face width (jaw to jaw) as a fraction of the frame height
    motion: float = 1.0  # amplitude of head motion (1 = default)
    supersample: int = 2  # drawing resolution factor (anti-aliasing)
    blur: float = 0.55  # camera lens softness, Gaussian sigma in pixels
    noise: float = 2.5  # camera sensor noise, std in 0..255 units at mid-grey (signal-dependent)
    deepfakes_bottleneck: int = 40  # side in pixels of the Deepfakes low-resolution face
    trace_threshold: float = 1.5  # local RMS of the fine (> 2 px) departure from the ideal (0..255): a trace
    colour_threshold: float = 5.0  # coarse (2 px-smoothed) departure from the ideal (0..255): a trace
    x264_preset: str = "medium"  # c23/c40 (ffmpeg's default, as FF++)
    raw_x264_preset: str = "ultrafast"  # raw is lossless: the preset only trades file size for time
    methods: tuple[str, ...] = METHODS
    compressions: tuple[str, ...] = COMPRESSIONS

    def __post_init__(self) -> None:
        if len(self.pairs) != 3 or any(p < 1 for p in self.pairs):
            raise UserError(f"pairs must be >= 1 in every split (train, val, test), got {list(self.pairs)}")
        if sum(self.pairs) > 500:
            raise UserError("pairs: at most 500 pairs (three-digit ids: 1000 identities)")
        if self.frames < 1 or self.fps < 1:
            raise UserError("frames and fps must be >= 1")
        if self.height < 64 or self.width < 64 or self.height % 2 or self.width % 2:
            raise UserError(f"height and width must be even and >= 64 (yuv420p), got {self.height}x{self.width}")
        if not 0.1 <= self.face_size <= 0.7:
            raise UserError(f"face_size must be in [0.1, 0.7] (face width / frame height), got {self.face_size}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise UserError(f"unknown method(s) {bad}; choose from: {', '.join(METHODS)}")
        bad = [c for c in self.compressions if c not in COMPRESSIONS]
        if bad or not self.compressions:
            raise UserError(f"unknown compression(s) {bad}; choose from: {', '.join(COMPRESSIONS)}")
        if self.supersample < 1:
            raise UserError("supersample must be >= 1")

    @property
    def num_identities(self) -> int:
        return 2 * sum(self.pairs)
