"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from fstmatch.ffpp import COMPRESSIONS, METHODS


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


def add_methods_argument(parser: argparse.ArgumentParser, help_default: str = "all", include_real: bool = False) -> None:
    """``--methods``: FF++ manipulation names (plus ``real`` when asked); ``None`` when not given."""
    choices = ("real", *METHODS) if include_real else METHODS
    parser.add_argument(
        "--methods", nargs="+", choices=choices, default=None, metavar="METHOD",
        help=f"only these methods ({', '.join(choices)}; default: {help_default})",
    )


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
