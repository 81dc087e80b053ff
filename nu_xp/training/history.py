"""``History``: the per-epoch record that ``fit`` returns, and its plot."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["History"]


class History:
    """Per-epoch record of a ``fit``: ``history["loss"]``, ``history["val_accuracy"]``…

    It reads as a mapping of names to per-epoch lists (``keys()``,
    ``items()``, ``get()``, iteration over the names), like Keras'
    ``History.history``; ``len(history)`` is the number of completed epochs.

    Attributes
    ----------
    history : dict[str, list[float]]
        One list per quantity, one value per completed epoch.
    epoch : list[int]
        The completed epochs (0-based).
    interrupted : bool
        True when training stopped on Ctrl-C (KeyboardInterrupt).
    stopped_early : bool
        True when a callback stopped training.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.interrupted = False
        self.stopped_early = False

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        """Record one epoch's ``logs``."""
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    # a mapping of names to per-epoch lists, as Keras' ``History.history`` (``len`` stays the number of epochs)
    def keys(self) -> Any:
        """The recorded names: ``"loss"``, ``"val_loss"``, ``"accuracy"``…"""
        return self.history.keys()

    def values(self) -> Any:
        """The per-epoch lists."""
        return self.history.values()

    def items(self) -> Any:
        """``(name, per-epoch list)`` pairs."""
        return self.history.items()

    def get(self, key: str, default: Any = None) -> Any:
        """``history[key]``, or ``default`` when nothing was recorded under ``key``."""
        return self.history.get(key, default)

    def __iter__(self) -> Any:
        return iter(self.history)

    def __getattr__(self, name: str) -> list[float]:
        """``history.loss`` is ``history["loss"]``."""
        history = self.__dict__.get("history", {})
        if name in history:
            return history[name]
        raise AttributeError(f"History has no {name!r}; recorded: {sorted(history)}")

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and (self.history, self.epoch) == (other.history, other.epoch)

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        return f"History({len(self)} epochs{': ' if last else ''}{last})"

    def plot(self, path: Any = None, *, title: str | None = None) -> Any:
        """Draw the loss and each metric per epoch (training and validation) with matplotlib.

        Returns the ``matplotlib.figure.Figure`` (made without pyplot, so it
        works with no display); ``path`` also saves it (PNG, SVG, PDF…).
        """
        from matplotlib.figure import Figure

        names = [k for k in self.history if not k.startswith("val_")]
        fig = Figure(figsize=(4.2 * max(len(names), 1), 3.4), layout="constrained")
        axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
        epochs = np.arange(1, len(self) + 1)
        for ax, name in zip(axes, names):
            ax.plot(epochs, self.history[name], label=f"train {name}" if name != "lr" else "lr")
            if f"val_{name}" in self.history:
                ax.plot(epochs, self.history[f"val_{name}"], label=f"validation {name}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(name)
            if name == "loss" and min(self.history[name], default=1.0) > 0:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig
