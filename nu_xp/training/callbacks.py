"""``fit`` callbacks: the ``Callback`` hooks and ``EarlyStopping``."""

from __future__ import annotations

import numpy as np

from ..layers import Layer
from ..optim import Optimizer
from .history import History

__all__ = ["Callback", "EarlyStopping"]


class Callback:
    """Base class for ``fit`` callbacks; every hook is optional.

    ``on_train_begin(model, optimizer)`` is called once; ``on_epoch_end(epoch,
    logs)`` after each epoch, where ``logs`` may be extended; returning True
    (or setting ``self.stop_training = True``) stops training.
    """

    stop_training = False

    def on_train_begin(self, model: Layer, optimizer: Optimizer) -> None:
        """Called before the first epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool | None:
        """Called after each epoch with its logs."""
        return None

    def on_train_end(self, history: History) -> None:
        """Called once after the last epoch (also after an interrupt)."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the logs (``"loss"``, ``"val_accuracy"``…).
    patience : int, default 5
    min_delta : float, default 0
    mode : {"auto", "min", "max"}
        "auto": "max" for accuracies and r2, else "min".
    restore_best_weights : bool, default False
        On stop, load the weights of the best epoch back into the model.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be a non-negative integer, got {patience!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if any(s in monitor for s in ("acc", "r2")) else "min"
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, abs(float(min_delta)), mode
        self.restore_best_weights = restore_best_weights
        self.best = float("inf") if mode == "min" else -float("inf")
        self.best_epoch = -1
        self.stopped_epoch: int | None = None
        self._wait = 0
        self._best_state: dict[str, np.ndarray] | None = None
        self._model: Layer | None = None

    def on_train_begin(self, model: Layer, optimizer: Optimizer) -> None:
        self._model = model
        self.best = float("inf") if self.mode == "min" else -float("inf")
        self._wait, self.stop_training, self.stopped_epoch = 0, False, None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        if self.monitor not in logs:
            hint = " (pass validation_data to fit)" if self.monitor.startswith("val_") else ""
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, but the logs hold {sorted(logs)}{hint}")
        value = logs[self.monitor]
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best_weights and self._model is not None:
                self._best_state = self._model.state_dict()
            return False
        self._wait += 1
        if self._wait >= self.patience:
            self.stop_training = True
            self.stopped_epoch = epoch
            if self._best_state is not None and self._model is not None:
                self._model.load_state_dict(self._best_state)
        return self.stop_training
