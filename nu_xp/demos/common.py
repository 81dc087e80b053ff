"""The command line every demo shares: ``--backend --epochs --seed --lr --out --no-progress``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..backends import BACKENDS

__all__ = ["DEFAULT_OUT", "demo_parser", "output_folder"]

#: where the demos write their plots and models unless ``--out`` says otherwise (git-ignored)
DEFAULT_OUT = Path("nu_xp_demo")


def demo_parser(
    name: str, doc: str, *, epochs: int | None, lr: float, epochs_help: str = "passes over the training data"
) -> Any:
    """An ``ArgumentParser`` for ``nu-xp demo <name>`` with the common options; ``doc`` is the module docstring."""
    parser = argparse.ArgumentParser(
        prog=f"nu-xp demo {name}", description=doc.splitlines()[0], epilog="\n".join(doc.splitlines()[1:])
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--backend", default="numpy", choices=BACKENDS, help="where to compute (default numpy)")
    if epochs is not None:
        parser.add_argument("--epochs", type=int, default=epochs, help=f"{epochs_help} (default {epochs})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch order (default 0)")
    parser.add_argument("--lr", type=float, default=lr, help=f"learning rate (default {lr})")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"folder for the plots and models (default ./{DEFAULT_OUT}/)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar or epoch lines")
    return parser


def output_folder(path: Path) -> Path:
    """``path``, created if needed."""
    path.mkdir(parents=True, exist_ok=True)
    return path
