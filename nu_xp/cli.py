"""Console entry point: ``nu-xp demo [xor|regression|digits] [--backend ...]``."""

from __future__ import annotations

import argparse
import importlib
import sys

from .demos import DEMOS


def main(argv: list[str] | None = None) -> int:
    """Run ``nu-xp``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="nu-xp", description="nu_xp command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train an example model, print the result and write its plot")
    demo.add_argument("name", nargs="?", default="xor", choices=DEMOS)
    args, rest = parser.parse_known_args(argv)
    module = importlib.import_module(f"nu_xp.demos.{args.name}")
    if "--out" not in rest:
        rest = [*rest, "--out", "."]
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
