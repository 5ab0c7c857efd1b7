"""The ``vidlearn`` command: argument parsing and user-facing errors only.

Every subcommand is a thin call into the library. A ``VidlearnError`` becomes one line on stderr
and exit code 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from vidlearn import __version__
from vidlearn.errors import VidlearnError

# Each command module exposes ``register(subparsers)``, which adds its subcommands and sets
# ``func`` on them. Imported lazily by name so that ``vidlearn probe`` does not import torch models.
COMMAND_MODULES = (
    "vidlearn.cli.video_commands",
    "vidlearn.cli.data_commands",
    "vidlearn.cli.prepare_commands",
    "vidlearn.cli.motion_commands",
    "vidlearn.cli.model_commands",
    "vidlearn.cli.engine_commands",
    "vidlearn.cli.study_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidlearn",
        description="Learning from video: decode, sample, train, evaluate and understand video models.",
    )
    parser.add_argument("--version", action="version", version=f"vidlearn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int | None] = args.func
    try:
        return int(command(args) or 0)
    except VidlearnError as exc:
        print(f"vidlearn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vidlearn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
