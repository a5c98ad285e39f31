"""`python -m offline train|score|report`: the offline commands without the stream's CLI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from offline.cli import register


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
