"""Learning-rate schedules: ``StepLR``, ``ExponentialLR``, ``CosineAnnealingLR``.

Schedules change every parameter group's ``lr`` once per ``step()`` (call it once per
epoch); they are also ``fit`` callbacks, so ``fit(..., callbacks=[StepLR(opt, 10)])``
steps them at every epoch end.
"""

from __future__ import annotations

import math
from typing import Any

from ..validation import check_number, check_positive_int
from .optimizer import Optimizer, unwrap

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LRScheduler", "StepLR"]


class LRScheduler:
    """Base of the schedules: ``step()`` sets each group's ``lr = base_lr · factor(epoch)``.

    ``base_lrs`` are the groups' learning rates when the schedule was made
    (``base_lr`` is the first); subclasses say ``lr_at(base_lr)``.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose groups' ``lr`` this schedule sets (their current ``lr`` is the starting value).
    """

    def __init__(self, optimizer: Optimizer) -> None:
        optimizer = unwrap(optimizer)  # a DistributedOptimizer schedules the optimizer it wraps
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} takes a nu_xp optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self.last_epoch = 0

    @property
    def base_lr(self) -> float:
        """The first group's base learning rate."""
        return self.base_lrs[0]

    def lr_at(self, base_lr: float) -> float:
        """The learning rate at ``self.last_epoch`` for a group that started at ``base_lr``."""
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        """Every group's learning rate for ``self.last_epoch``."""
        return [self.lr_at(base) for base in self.base_lrs]

    def step(self) -> None:
        """Advance one epoch and update every group's learning rate."""
        self.last_epoch += 1
        self._apply(self.get_lr())

    def _apply(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        """Every group's current learning rate, as in PyTorch."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """``fit`` callback hook: one ``step()`` per epoch; logs the (first group's) new ``lr``."""
        self.step()
        logs["lr"] = self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        """``{"base_lrs": [...], "last_epoch": ...}``."""
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore [`state_dict`][] output (also the single ``base_lr`` of older versions)."""
        bases = state.get("base_lrs", [state.get("base_lr")] * len(self.base_lrs))
        self.base_lrs = [check_number("base_lr", b) for b in bases]
        self.last_epoch = int(state["last_epoch"])
        self._apply(self.get_lr() if self.last_epoch else list(self.base_lrs))


class StepLR(LRScheduler):
    """``lr = base_lr · gamma ** (epoch // step_size)`` (``torch.optim.lr_scheduler.StepLR``).

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose groups' ``lr`` this schedule sets (their current ``lr`` is the starting value).
    step_size : int
        Epochs between two decays.
    gamma : float, default 0.1
        The factor of each decay.
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = check_positive_int("step_size", step_size)
        self.gamma = check_number("gamma", gamma)

    def lr_at(self, base_lr: float) -> float:
        return base_lr * self.gamma ** (self.last_epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """``lr = base_lr · gamma ** epoch`` (``torch.optim.lr_scheduler.ExponentialLR``).

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose groups' ``lr`` this schedule sets (their current ``lr`` is the starting value).
    gamma : float
        The factor applied every epoch.
    """

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        super().__init__(optimizer)
        self.gamma = check_number("gamma", gamma)

    def lr_at(self, base_lr: float) -> float:
        return base_lr * self.gamma**self.last_epoch


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) · (1 + cos(π · epoch / T_max)) / 2``.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose groups' ``lr`` this schedule sets (their current ``lr`` is the starting value).
    T_max : int
        Epochs of the half cosine.
    eta_min : float, default 0
        The smallest learning rate.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.T_max = check_positive_int("T_max", T_max)
        self.eta_min = check_number("eta_min", eta_min)

    def lr_at(self, base_lr: float) -> float:
        cos = math.cos(math.pi * self.last_epoch / self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1.0 + cos) / 2.0
