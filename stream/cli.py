"""The `basketcast` command: one entry point, subcommands registered by the module that owns them.

- services: `services up|down|status` (stream.services)
- offline:  `train`, `score`, `report` (offline.cli)
- stream:   `worker`, `replay`, `schemas export` (stream.commands)
- demo:     `demo` (stream.demo)

Each `register(subparsers)` adds its parsers with `set_defaults(func=...)`; heavy imports happen
inside the functions so `basketcast --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from offline import cli as offline_cli
    from stream import commands as stream_commands
    from stream import demo, services

    parser = argparse.ArgumentParser(
        prog="basketcast",
        description="Score new e-commerce customers in real time (segment + next-year forecast).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    services.register(sub)
    offline_cli.register(sub)
    stream_commands.register(sub)
    demo.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
