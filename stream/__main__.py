"""`python -m stream COMMAND`: the stream commands alone (worker, replay, schemas export)."""

from __future__ import annotations

import argparse
import sys

from stream.commands import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
