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


def add_methods_argument(parser: argparse.ArgumentParser, help_extra: str = "") -> None:
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), metavar="METHOD",
        help=f"manipulation methods ({', '.join(METHODS)}; default all){help_extra}",
    )


def add_compressions_argument(parser: argparse.ArgumentParser, default: list[str] | None = None) -> None:
    parser.add_argument(
        "--compressions", nargs="+", choices=COMPRESSIONS, default=default or list(COMPRESSIONS),
        metavar="COMP", help=f"compression levels ({', '.join(COMPRESSIONS)}; default: %(default)s)",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
