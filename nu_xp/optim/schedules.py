"""Learning-rate schedules: ``StepLR``, ``ExponentialLR``, ``CosineAnnealingLR``.

Schedules change ``optimizer.lr`` once per ``step()`` (call it once per
epoch); they are also ``fit`` callbacks, so ``fit(..., callbacks=[StepLR(opt, 10)])``
steps them at every epoch end.
"""

from __future__ import annotations

import math
from typing import Any

from ..validation import check_number, check_positive_int
from .optimizer import Optimizer

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LRScheduler", "StepLR"]


class LRScheduler:
    """Base of the schedules: ``step()`` sets ``optimizer.lr = base_lr · factor(epoch)``."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} takes a nu_xp optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0

    def get_lr(self) -> float:
        """The learning rate for ``self.last_epoch``."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and update the optimizer's learning rate."""
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()

    def get_last_lr(self) -> list[float]:
        """``[optimizer.lr]``, as in PyTorch."""
        return [self.optimizer.lr]

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """``fit`` callback hook: one ``step()`` per epoch; logs the new ``lr``."""
        self.step()
        logs["lr"] = self.optimizer.lr

    def state_dict(self) -> dict[str, Any]:
        """``{"base_lr": ..., "last_epoch": ...}``."""
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.base_lr = float(state["base_lr"])
        self.last_epoch = int(state["last_epoch"])
        self.optimizer.lr = self.get_lr() if self.last_epoch else self.base_lr


class StepLR(LRScheduler):
    """``lr = base_lr · gamma ** (epoch // step_size)`` (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = check_positive_int("step_size", step_size)
        self.gamma = check_number("gamma", gamma)

    def get_lr(self) -> float:
        return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """``lr = base_lr · gamma ** epoch`` (``torch.optim.lr_scheduler.ExponentialLR``)."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        super().__init__(optimizer)
        self.gamma = check_number("gamma", gamma)

    def get_lr(self) -> float:
        return self.base_lr * self.gamma**self.last_epoch


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) · (1 + cos(π · epoch / T_max)) / 2``."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.T_max = check_positive_int("T_max", T_max)
        self.eta_min = check_number("eta_min", eta_min)

    def get_lr(self) -> float:
        cos = math.cos(math.pi * self.last_epoch / self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1.0 + cos) / 2.0
