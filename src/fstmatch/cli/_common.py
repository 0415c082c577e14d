"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fstmatch.ffpp import COMPRESSIONS, METHODS

if TYPE_CHECKING:
    from fstmatch.data.geometry import Geometry


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML config file (keys of the config dataclass)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (dotted for nested keys, value parsed as YAML); repeatable",
    )


def add_methods_argument(parser: argparse.ArgumentParser, help_default: str = "all", include_real: bool = False,
                         flag: str = "--methods") -> None:
    """``--methods`` (or ``flag``): FF++ manipulation names (plus ``real`` when asked), in
    ``args.methods``; ``None`` when not given."""
    choices = ("real", *METHODS) if include_real else METHODS
    parser.add_argument(
        flag, dest="methods", nargs="+", choices=choices, default=None, metavar="METHOD",
        help=f"only these manipulations ({', '.join(choices)}; default: {help_default})",
    )


def add_renamed_flags(parser: argparse.ArgumentParser, renamed: dict[str, str]) -> None:
    """Old spellings of options (``{"--old": "--new"}``): giving one is an error naming the new one."""

    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(f"{option_string} was renamed {renamed[option_string]}")

    for old in renamed:
        parser.add_argument(old, nargs="*", action=Renamed, help=argparse.SUPPRESS)


def add_compressions_argument(parser: argparse.ArgumentParser, help_default: str = "all") -> None:
    """``--compressions``: FF++ compression levels; ``None`` when not given."""
    parser.add_argument(
        "--compressions", nargs="+", choices=COMPRESSIONS, default=None, metavar="COMP",
        help=f"only these compression levels ({', '.join(COMPRESSIONS)}; default: {help_default})",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint`` and ``--arch``: an fstmatch checkpoint, or another framework's state dict."""
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="CKPT",
                        help="fstmatch run directory or model.safetensors; with --arch, a plain state dict "
                             "(.pth read with weights_only=True, or .safetensors)")
    parser.add_argument("--arch", metavar="NAME",
                        help="architecture of a non-fstmatch checkpoint: deepfakebench:xception, "
                             "deepfakebench:efficientnetb4 (DeepfakeBench's ckpt_best.pth), timm:<name>, resnet18...")


def add_geometry_arguments(parser: argparse.ArgumentParser) -> None:
    """Face alignment options; ``None`` = the run's config.yaml, else the convention's default."""
    parser.add_argument("--convention", choices=("fstmatch", "deepfakebench"),
                        help="alignment convention: fstmatch (the reference's; canvas 224, scale 0.9) or "
                             "deepfakebench (its preprocess.py; canvas 256, margin scale 1.3) "
                             "(default: the run's, else fstmatch)")
    parser.add_argument("--canvas", type=positive_int, metavar="PX", help="aligned face size in px (default: the convention's)")
    parser.add_argument("--face-width", type=positive_int, metavar="PX",
                        help="fstmatch convention: template eye distance in px (default: round(canvas * 80 / 224))")
    parser.add_argument("--scale", type=float, help="alignment scale (default: the convention's, 0.9 or 1.3)")


def resolve_geometry(args: argparse.Namespace, checkpoint: Path) -> Geometry:
    """The faces' :class:`~fstmatch.data.geometry.Geometry`: the run's ``config.yaml`` input (when
    ``checkpoint`` is a run directory) overridden by the options given, defaults filled in."""
    from fstmatch.data.geometry import GEOMETRY_KEYS, Geometry

    given: dict = {}
    if checkpoint.is_dir() and (checkpoint / "config.yaml").is_file():
        from fstmatch.train import load_run_config

        run_input = load_run_config(checkpoint).input
        given = run_input.geometry().to_dict()
        if args.convention is not None and args.convention != run_input.convention:
            given = {"convention": args.convention}  # the run's canvas/scale belong to its own convention
    given.update({k: getattr(args, k) for k in GEOMETRY_KEYS if getattr(args, k) is not None})
    return Geometry.from_dict(given)
