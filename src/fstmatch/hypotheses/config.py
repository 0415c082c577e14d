"""``VerifyConfig``: what ``fstmatch verify`` analyses and how (loaded with
:func:`fstmatch.config.load_config`; presets in ``fstmatch/presets/verify/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from fstmatch.data.geometry import Geometry
from fstmatch.errors import UserError
from fstmatch.hypotheses.metrics import THRESHOLDS

#: Model roles a verify run may need, in the order they are explained.
ROLES: tuple[str, ...] = ("source", "target", "det", "det_paired", "det_unpaired", "fstmatching")
#: Roles each hypothesis needs (fstmatching is optional: ground-truth score only).
NEEDS: dict[int, tuple[str, ...]] = {
    1: ("source", "target", "det"),
    2: ("source", "target", "det_paired", "det_unpaired"),
    3: ("source", "target", "det"),
}


@dataclass
class ModelRef:
    """A checkpoint that is not fstmatch's own format: a plain state dict at ``path`` of the
    registered architecture ``arch`` (e.g. ``deepfakebench:xception``, ``timm:<name>``)."""

    path: str
    arch: str | None = None


@dataclass
class CheckpointsConfig:
    """Trained models, per role: a run directory of ``fstmatch train`` or a ``.safetensors`` file,
    or ``{path: ..., arch: ...}`` for another framework's state dict (a DeepfakeBench detector:
    ``det: {path: xception_best.pth, arch: deepfakebench:xception}``).

    All analysed models are the raw-trained ones (the paper's protocol): ``det`` is the detector of
    hypotheses 1 and 3, ``det_paired``/``det_unpaired`` those of hypothesis 2. ``fstmatching``
    (optional) only gets a ground-truth score.
    """

    source: str | ModelRef | None = None
    target: str | ModelRef | None = None
    det: str | ModelRef | None = None
    det_paired: str | ModelRef | None = None
    det_unpaired: str | ModelRef | None = None
    fstmatching: str | ModelRef | None = None

    def ref(self, role: str) -> tuple[str | None, str | None]:
        """``(path, arch)`` of ``role`` (``arch`` None: an fstmatch checkpoint)."""
        value = getattr(self, role)
        return (value.path, value.arch) if isinstance(value, ModelRef) else (value, None)


@dataclass
class ImagesConfig:
    """Which frames are explained: fakes of each method, at raw, from ``split``.

    The identity encoders must have seen the identities they explain but not the frames (docs/method.md §5):
    with ``holdout`` > 0 the frames are those :func:`fstmatch.data.holdout_frames` holds out of the
    ``split`` rows at ``raw`` — the same frames ``fstmatch train --set data.holdout=…`` held out of
    the encoders' training (keep the two values equal). ``holdout: 0`` takes every frame of
    ``split`` (e.g. ``test`` with encoders trained on all identities).
    """

    split: str = "train"
    holdout: float = 1
    per_method: int = 16  # images per method (spread over videos: one frame per video first)
    methods: tuple[str, ...] | None = None  # null: every fake method in the manifest
    #: alignment convention of every analysed model's input (fstmatch.data.align): "fstmatch" or
    #: "deepfakebench" (a DeepfakeBench detector; its encoders must be trained on it too)
    convention: str = "fstmatch"
    canvas: int | None = None  # null: the convention's (fstmatch 224, deepfakebench 256)
    face_width: int | None = None  # fstmatch only; null: round(canvas * 80 / 224)
    scale: float | None = None  # null: the convention's (fstmatch 0.9, deepfakebench margin 1.3)

    def __post_init__(self) -> None:
        from fstmatch.data.align import get_convention

        conv = get_convention(self.convention)
        self.canvas = conv.canvas if self.canvas is None else self.canvas
        self.scale = conv.scale if self.scale is None else self.scale
        conv.template(self.canvas, self.face_width, self.scale)  # refuses face_width outside fstmatch

    def geometry(self) -> Geometry:
        """The alignment keys as one :class:`~fstmatch.data.geometry.Geometry` (``.to_dict()``: as
        the TrainConfig ``input`` section spells them)."""
        return Geometry.of(self)


#: fstmatch.explain.ESTIMATORS, spelled out so that reading a config does not import torch
#: (tests/hypotheses/test_config_renames.py checks they match)
ESTIMATORS = ("spline", "permutation", "kernel", "leverage", "unbiased", "reference", "exact")


@dataclass
class ShapleyConfig:
    """Settings of :func:`fstmatch.explain.shapley` for every map of the run."""

    #: old key -> new key (an old key in a config is an error naming the new one)
    RENAMED: ClassVar[dict[str, str]] = {"method": "estimator", "permutations": "budget", "amp": "weights_dtype"}

    grid: int = 16
    budget: int = 100  # orderings' worth of forwards: 2 + budget * (grid² - 1) a map (reference: m per cell)
    # the estimator (docs/explain.md); "spline": size-spline KernelSHAP, the fewest forwards per error measured
    estimator: str = "spline"
    batch_size: int = 256
    weights_dtype: Literal["float32", "bfloat16"] = "float32"  # bfloat16: a copy of the model with bf16 weights
    seed: int = 0

    def __post_init__(self) -> None:
        if self.estimator == "auto":
            raise ValueError("shapley.estimator 'auto' was removed (spline beats it on every game measured); "
                             "use 'spline' (the default)")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"shapley.estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}")


@dataclass
class VerifyConfig:
    manifest: str | None = None  # manifest.jsonl of `fstmatch prepare` (or its folder)
    checkpoints: CheckpointsConfig = field(default_factory=CheckpointsConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    shapley: ShapleyConfig = field(default_factory=ShapleyConfig)
    #: what makes the maps: ``shapley`` (the paper's; the ``shapley`` settings apply) or another
    #: explainer of ``fstmatch.explain.attribution`` (gradcam, gradcam++, ig, occlusion, saliency),
    #: its pixel map summed over each grid cell (docs/hypotheses.md, "Other explainers")
    explainer: Literal["shapley", "gradcam", "gradcam++", "ig", "occlusion", "saliency"] = "shapley"
    thresholds: tuple[float, ...] = THRESHOLDS  # Q's thresholds (the reference's eight)
    figure_threshold: float = 0.8  # top cells shown in H1's overlap panel (the reference's threshold_vis)
    figures_per_method: int = 3  # H1 per-image figures written per method
    noise_draws: int = 64  # redraws of the maps from their stderr to measure estimator noise
    #: H3 frames whose raw maps are estimated a second time to measure the estimator's attenuation of
    #: δ (``reproducibility``, a mean over images): an even subsample over methods; null: every frame
    repeat_images: int | None = 40
    truth: bool = True  # ground-truth scores (needs FST-Synth masks in the manifest)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: Train a missing checkpoint into its path (default ``DIR/runs/<role>``) with the study's
    #: protocol (fstmatch.hypotheses.protocol) and the TrainConfig keys in ``train``.
    train_missing: bool = False
    train: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None  # torch CPU threads (null: torch's default)

    def __post_init__(self) -> None:
        if self.repeat_images is not None and self.repeat_images < 1:
            raise UserError(f"repeat_images must be >= 1 (or null: every H3 frame), got {self.repeat_images}")
