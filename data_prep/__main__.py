"""`python -m data_prep COMMAND …` — thin entry point; each command lives in its own module.

A module listed in COMMANDS exposes `register(subparsers)`, which adds its sub-parser and sets
`func(args) -> int`. Errors a user can act on (missing files, bad arguments, a build that cannot
resume) print one line and exit 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# One worker is one core: the HF tokenizer's own thread pool would let `--workers 1` use them all
# (and deadlock-warn in forked workers). Set TOKENIZERS_PARALLELISM=true to override.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from data_prep.shards import BuildError

COMMANDS = ["tokenizer", "mrc", "inspect", "synth", "corpus"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"data_prep.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, NotADirectoryError, BuildError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
