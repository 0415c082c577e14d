"""``fstmatch`` command line: a thin layer over the library.

Each subcommand lives in ``fstmatch/cli/<name>.py`` and defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Those modules import only argparse-level code at
the top (heavy imports go inside ``run``) so ``fstmatch --help`` is instant.

Exit status: 0 success, 1 a failure the command reports, 2 a user mistake (bad arguments, bad
input files: :class:`fstmatch.UserError`), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from fstmatch import __version__
from fstmatch.errors import UserError

#: Subcommands in pipeline order.
COMMANDS: tuple[str, ...] = ("synth", "prepare", "train", "test", "explain", "verify", "demo", "browse")
#: Commands that run models for long enough that the allocator settings matter.
_HEAVY = {"train", "test", "explain", "verify", "demo"}
#: glibc malloc settings that stop it returning large blocks to the OS after every batch
#: (1.55x Shapley forwards/s on the demo's CPU, BENCHMARKS.md; more at batch >= 64). They only act
#: when set before the process starts, so the CLI re-executes itself once with them.
ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


#: What to tell a user who pressed Ctrl-C; a command module may define INTERRUPT_HINT.
_DEFAULT_HINT = "rerun the same command to resume"


def _available() -> list[str]:
    return [c for c in COMMANDS if importlib.util.find_spec(f"fstmatch.cli.{c}") is not None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fstmatch",
        description=(
            "FST-Matching: explain deepfake detectors by image matching (ECCV 2022), on FaceForensics++ "
            "or on FST-Synth, a synthetic FF++ generated offline. Typical flow: synth -> prepare -> "
            "train -> test / explain -> verify; `fstmatch demo` runs all of it."
        ),
        epilog="Run `fstmatch COMMAND --help` for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"fstmatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _available():
        mod = importlib.import_module(f"fstmatch.cli.{name}")
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _interrupt_hint=getattr(mod, "INTERRUPT_HINT", _DEFAULT_HINT))
    return parser


def _maybe_reexec(command: str | None) -> None:
    if command not in _HEAVY or os.environ.get("FSTMATCH_NO_REEXEC") == "1":
        return
    if all(os.environ.get(k) == v for k, v in ALLOCATOR_ENV.items()):
        return
    env = {**os.environ, **ALLOCATOR_ENV, "FSTMATCH_NO_REEXEC": "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "fstmatch", *sys.argv[1:]], env)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. ``argv=None`` reads ``sys.argv`` (and may re-exec with allocator settings)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if argv is None:
        _maybe_reexec(args.command)
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        print(f"fstmatch {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nfstmatch {args.command}: interrupted; {args._interrupt_hint}.", file=sys.stderr)
        return 130
