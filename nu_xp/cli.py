"""Console entry point: ``nu-xp demo NAME [options]``; ``nu-xp demo NAME --help`` lists a demo's options."""

from __future__ import annotations

import argparse
import importlib
import sys

from .demos import DEMOS


def main(argv: list[str] | None = None) -> int:
    """Run ``nu-xp``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="nu-xp", description="nu_xp command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train an example model, print the result and write its plot (into ./nu_xp_demo/ by default)",
        description="Run a demo; everything after its name goes to the demo (nu-xp demo xor --help lists them).",
        epilog="demos:\n" + "\n".join(f"  {name:<11s} {_summary(name)}" for name in DEMOS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("name", nargs="?", default="xor", choices=DEMOS)
    demo.add_argument("options", nargs=argparse.REMAINDER, help="the demo's own options")
    args = parser.parse_args(argv)
    module = importlib.import_module(f"nu_xp.demos.{args.name}")
    return int(module.main(args.options) or 0)


def _summary(name: str) -> str:
    """The first line of a demo module's docstring (what it does)."""
    doc = importlib.import_module(f"nu_xp.demos.{name}").__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


if __name__ == "__main__":
    sys.exit(main())
