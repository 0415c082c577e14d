"""``TrainConfig``: everything one training run depends on, loaded with :func:`fstmatch.config.load_config`.

Presets live in ``fstmatch/presets/train/<name>.yaml``; the resolved config is written to the run
directory as ``config.yaml`` and compared on ``--resume``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fstmatch.data.geometry import Geometry
from fstmatch.errors import UserError

Role = Literal["det", "source", "target", "fstmatching"]


@dataclass
class DataConfig:
    """Which manifest rows are trained on and validated on."""

    manifest: str | None = None  # path to manifest.jsonl (the CLI's --data fills it)
    split: tuple[str, ...] = ("train",)  # split(s) trained on
    val_split: str | None = "val"  # split used for the per-epoch validation (null: none)
    methods: tuple[str, ...] | None = None  # FF++ methods kept (null: all); reals are always kept
    compressions: tuple[str, ...] | None = None  # null: all
    set_name: Literal["all", "paired", "unpaired"] = "all"  # docs/method.md §4 hypothesis-2 training sets
    set_seed: int = 0  # seed of the paired/unpaired split of the training pairs
    #: Hold out frames of every training video (docs/method.md §5: analysis encoders must have seen the
    #: identities they explain). 0: none; an int >= 1: frames per video; a float < 1: fraction.
    #: The held-out frames replace ``val_split`` for validation.
    holdout: float = 0
    #: Real/fake balance (FF++ has ~5 fakes per real), for det and fstmatching: ``sampler`` draws
    #: each epoch's samples with replacement, weighted 1/count(label) (DDP-compatible: the draw is
    #: made once per epoch from the seed and sharded); ``loss`` weights the CE by n/(2*count);
    #: ``none`` ignores it. Identity roles never balance.
    balance: Literal["sampler", "loss", "none"] = "sampler"


@dataclass
class ModelConfig:
    role: Role = "det"
    arch: str = "resnet18"
    width: int = 64  # base channels (64: the real ResNet)
    pretrained: str | None = None  # null, "imagenet" or a .safetensors/.pth path (see fstmatch.models)
    #: FST-Matching loss weights (docs/method.md §6): CE det + source_weight*CE source + target_weight*CE target
    #: - interaction_weight * interaction.
    source_weight: float = 0.5
    target_weight: float = 1.0
    interaction_weight: float = 100.0
    extra: dict[str, Any] = field(default_factory=dict)  # more kwargs for fstmatch.models.create_model


@dataclass
class InputConfig:
    #: alignment convention (fstmatch.data.align): "fstmatch" (the reference's) or "deepfakebench"
    #: (train the H1 encoders of a DeepfakeBench detector on its own crops)
    convention: str = "fstmatch"
    canvas: int | None = None  # null: the convention's (fstmatch 224, deepfakebench 256)
    face_width: int | None = None  # fstmatch only; null: round(canvas * 80 / 224)
    #: test-time alignment scale, null: the convention's (fstmatch 0.9, deepfakebench margin 1.3);
    #: training jitters around it when augmenting
    scale: float | None = None
    augment: bool = True  # docs/method.md §2 training augmentation

    def __post_init__(self) -> None:
        from fstmatch.data.align import get_convention

        conv = get_convention(self.convention)
        self.canvas = conv.canvas if self.canvas is None else self.canvas
        self.scale = conv.scale if self.scale is None else self.scale
        conv.template(self.canvas, self.face_width, self.scale)  # refuses face_width outside fstmatch

    def geometry(self) -> Geometry:
        """The four alignment keys as one :class:`fstmatch.data.geometry.Geometry`."""
        return Geometry.of(self)


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 4e-3
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_steps: int = 0
    step_every: int = 0  # "step" schedule: multiply lr by step_gamma every this many steps (0: 1/3 of the run)
    step_gamma: float = 0.1
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of lr
    grad_clip: float | None = 1.0  # max global grad norm (null: off)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    input: InputConfig = field(default_factory=InputConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 10
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 64  # per process (global batch = batch_size * world size)
    eval_batch_size: int = 128
    num_workers: int = 0
    cache_mb: float = 512  # aligned faces kept in memory per loader process, without augmentation (0: off)
    amp: Literal["none", "bf16", "fp16"] = "none"  # fp16 only on CUDA
    channels_last: bool = False
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = 10  # steps between log.jsonl / TensorBoard entries
    checkpoint_every: int = 0  # steps between checkpoints (0: end of every epoch only)
    eval_every: int = 1  # epochs between validations (0: never)
    eval_max_rows: int | None = 2000  # cap on validation rows (an even subsample); null: all

    def __post_init__(self) -> None:
        if self.cache_mb < 0:
            raise UserError(f"cache_mb must be >= 0 (MiB of faces a loader process keeps; 0: off), got {self.cache_mb}")
