"""What ``fit`` shows while it trains: a tqdm bar, one line per epoch, or nothing.

``verbose="auto"`` (the default, as Keras): a bar where a person watches
(a terminal, or a Jupyter notebook through ``tqdm.auto``), else a line for the
first epoch, every few epochs and the last, about ten lines a run (a log file,
CI, captured output: 500 epochs of a small network would otherwise be 500
lines); ``1`` the bar, ``2`` one line per epoch (Keras' ``verbose=2``), ``0``
nothing. ``progress=False`` is ``verbose=0``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress", "make_progress"]


class Progress:
    """Silent reporter; the others override what they show."""

    def start_epoch(self, epoch: int) -> None:
        """Before the first batch of ``epoch`` (0-based)."""

    def step(self, total: Any, seen: int) -> None:
        """After a batch; ``total / seen`` is the running mean loss."""

    def end_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """After the epoch, with its logs."""

    def close(self) -> None:
        """Training is over."""


class _Bar(Progress):
    def __init__(self, tqdm: Any, epochs: int, steps: int) -> None:
        self.bar = tqdm(total=epochs * steps, unit="batch", leave=True, dynamic_ncols=True)
        self.epochs, self.last = epochs, time.monotonic()

    def start_epoch(self, epoch: int) -> None:
        self.bar.set_description(f"epoch {epoch + 1}/{self.epochs}")

    def step(self, total: Any, seen: int) -> None:
        self.bar.update(1)
        now = time.monotonic()
        if now - self.last > 0.2:  # reading the loss syncs a GPU: a few times a second at most
            self.bar.set_postfix(loss=f"{float(total) / seen:.4g}", refresh=False)
            self.last = now

    def end_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=True)

    def close(self) -> None:
        self.bar.close()


class _Lines(Progress):
    """A line after the first epoch, every ``every``-th and the last (``every=1``: each epoch)."""

    #: the lines a run of ``verbose="auto"`` prints in a log, about
    LINES_PER_RUN = 10

    def __init__(self, epochs: int, every: int = 1) -> None:
        self.epochs, self.every, self.start = epochs, every, time.monotonic()

    def start_epoch(self, epoch: int) -> None:
        self.start = time.monotonic()

    def end_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        if epoch and (epoch + 1) % self.every and epoch + 1 != self.epochs:
            return
        cells = " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())
        print(f"epoch {epoch + 1}/{self.epochs} - {cells} - {time.monotonic() - self.start:.2f} s", flush=True)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"  # type: ignore[attr-defined]
    except Exception:
        return False


def make_progress(progress: bool, verbose: int | str, epochs: int, steps: int) -> Progress:
    """The reporter for ``fit(progress=..., verbose=...)``; ``steps`` batches per epoch."""
    if verbose not in ("auto", 0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    if not progress or verbose == 0:
        return Progress()
    watched = bool(getattr(sys.stderr, "isatty", lambda: False)()) or _in_notebook()
    if verbose == 2:
        return _Lines(epochs)
    if verbose == "auto" and not watched:
        return _Lines(epochs, every=max(1, -(-epochs // _Lines.LINES_PER_RUN)))
    try:
        from tqdm.auto import tqdm
    except ImportError:  # no tqdm: lines instead of a bar
        return _Lines(epochs)
    return _Bar(tqdm, epochs, steps)
