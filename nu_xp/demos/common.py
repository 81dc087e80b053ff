"""The command line every demo shares: ``--backend --epochs --seed --lr --out --no-progress``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

from ..backends import BACKENDS, get_backend

__all__ = [
    "DEFAULT_OUT",
    "DemoParser",
    "RunnableBackend",
    "demo_parser",
    "folder",
    "non_negative_int",
    "output_folder",
    "positive_float",
    "positive_int",
    "steps_of",
]

#: where the demos write their plots and models unless ``--out`` says otherwise (git-ignored)
DEFAULT_OUT = Path("nu_xp_demo")


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1 (else one line, exit status 2)."""
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An argparse type: an integer ≥ 0 (a seed)."""
    return _integer(text, 0, "a non-negative integer")


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def folder(text: str) -> Path:
    """An argparse type: a folder to write into (it may not exist yet, but must not be a file)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; name a folder to write the demo's files into")
    return path


class DemoParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose every mistake is one line on stderr, then exit status 2."""

    def error(self, message: str) -> NoReturn:
        """One line on stderr (the mistake and where to look), then exit status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class RunnableBackend(argparse.Action):
    """``--backend``: a name of the registry that can also run here (CuPy needs a GPU), else one line, exit 2."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        try:
            get_backend(values)
        except (ImportError, RuntimeError, ValueError) as exc:
            parser.error(f"--backend {values}: {exc}")
        setattr(namespace, self.dest, values)


def demo_parser(
    name: str,
    doc: str,
    *,
    epochs: int | None,
    lr: float,
    epochs_help: str = "passes over the training data",
    steps: int | None = None,
) -> Any:
    """An ``ArgumentParser`` for ``nu-xp demo <name>`` with the common options; ``doc`` is the module docstring.

    Every demo takes ``--epochs``. A demo that counts its training in steps
    (``steps``: its default) takes ``--steps`` as well, and ``--epochs`` then
    sets the steps ([`steps_of`][]).
    """
    parser = DemoParser(prog=_prog(name), description=doc.splitlines()[0], epilog="\n".join(doc.splitlines()[1:]))
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--backend", default="numpy", choices=BACKENDS, action=RunnableBackend, help="where to compute (default numpy)"
    )
    if steps is not None:
        parser.add_argument("--steps", type=positive_int, default=steps, help=f"training steps (default {steps})")
        parser.add_argument(
            "--epochs", type=positive_int, default=None, help=f"{epochs_help}, instead of --steps (sets them)"
        )
    elif epochs is not None:
        parser.add_argument("--epochs", type=positive_int, default=epochs, help=f"{epochs_help} (default {epochs})")
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the weights and the batch order (default 0)"
    )
    parser.add_argument("--lr", type=positive_float, default=lr, help=f"learning rate (default {lr})")
    parser.add_argument(
        "--out", type=folder, default=DEFAULT_OUT, help=f"folder for the plots and models (default ./{DEFAULT_OUT}/)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar or epoch lines")
    return parser


def steps_of(args: Any, samples_per_epoch: int, samples_per_step: int) -> int:
    """``args.steps``, or the steps ``--epochs`` passes over ``samples_per_epoch`` take (set into ``args.steps``)."""
    if args.epochs is not None:
        args.steps = max(1, -(-args.epochs * samples_per_epoch // samples_per_step))
    return int(args.steps)


def _prog(name: str) -> str:
    """``nu-xp demo NAME``, or ``examples/NAME.py`` when the demo runs as that script (``--help`` says how it ran)."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == f"{name}.py" and script.parent.name == "examples":
        return f"python {script}"
    return f"nu-xp demo {name}"


def output_folder(path: Path) -> Path:
    """``path``, created if needed."""
    path.mkdir(parents=True, exist_ok=True)
    return path
