"""FST-Synth: a synthetic FaceForensics++ (procedural faces, five manipulations, H.264 at
raw/c23/c40, per-pixel ground truth), generated offline in seconds to hours.

>>> from fstmatch.synth import generate
>>> generate("data/fst-synth", preset="tiny", seed=0, workers=2)  # doctest: +SKIP

See ``docs/synth.md`` for the presets and the ground-truth schema.
"""

from fstmatch.synth.codec import encode_video, read_video
from fstmatch.synth.config import SynthConfig
from fstmatch.synth.generate import (
    VideoJob,
    generate,
    identity,
    iter_videos,
    make_splits,
    plan_videos,
    render_video,
    track,
)

__all__ = [
    "SynthConfig",
    "VideoJob",
    "encode_video",
    "generate",
    "identity",
    "iter_videos",
    "make_splits",
    "plan_videos",
    "read_video",
    "render_video",
    "track",
]
