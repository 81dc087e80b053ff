"""Learning-rate schedules with ``torch.optim.lr_scheduler``'s names, arguments and values.

``StepLR``, ``ExponentialLR``, ``CosineAnnealingLR``, ``LinearLR`` (a
warm-up), ``OneCycleLR``, ``SequentialLR`` (one schedule after another) and
``ReduceLROnPlateau`` (a metric that stopped improving). As in PyTorch, a
schedule notes each group's starting rate as ``initial_lr`` (the first
schedule made on an optimizer does), sets the rate of "epoch" 0 when it is
made, and ``step()`` advances one epoch (or one batch: ``OneCycleLR`` counts
steps). Each has ``state_dict()``/``load_state_dict()`` (JSON values), which
``nu_xp.save(..., scheduler=)`` and ``load_checkpoint(..., scheduler=)``
keep, so a resumed run continues the schedule exactly.

A schedule is also a ``fit`` callback: ``fit(..., callbacks=[StepLR(opt, 10)])``
steps it at every epoch end (``ScheduleStepper`` in ``nu_xp.callbacks`` steps
one per batch, or feeds ``ReduceLROnPlateau`` its metric).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

from ..validation import check_number, check_positive_int
from .optimizer import Optimizer, unwrap

__all__ = [
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]


def _optimizer(schedule: Any, optimizer: Any) -> Optimizer:
    optimizer = unwrap(optimizer)  # a wrapped optimizer (DistributedOptimizer…) schedules the one inside
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(schedule).__name__} takes a nu_xp optimizer, got {type(optimizer).__name__}")
    return optimizer


class LRScheduler:
    """Base of the schedules: ``step()`` sets each group's ``lr = lr_at(initial_lr)`` at ``last_epoch + 1``.

    ``base_lrs`` are the groups' ``initial_lr`` (noted in each group by the
    first schedule made on the optimizer: its rate then); a subclass says
    ``lr_at(base_lr)`` for ``self.last_epoch`` (PyTorch's closed form).

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose groups' ``lr`` this schedule sets.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = _optimizer(self, optimizer)
        for group in self.optimizer.param_groups:
            group.setdefault("initial_lr", float(group["lr"]))
        self.base_lrs = [float(group["initial_lr"]) for group in self.optimizer.param_groups]
        self.last_epoch = -1
        self.step()  # PyTorch's initial step: "epoch" 0's rate, set now

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

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or go to ``epoch``) and set every group's learning rate."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
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

    def _state_names(self) -> tuple[str, ...]:
        return ("base_lrs", "last_epoch")

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps (JSON values): the base rates and the epoch, and a subclass's own state."""
        return {name: _plain(getattr(self, name)) for name in self._state_names()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore [`state_dict`][] output (also the single ``base_lr`` of older files) and set the rates."""
        if not isinstance(state, dict):
            raise TypeError(f"{type(self).__name__}.load_state_dict takes a dict, got {type(state).__name__}")
        if "base_lrs" not in state and "base_lr" in state:
            state = {**state, "base_lrs": [state["base_lr"]] * len(self.base_lrs)}
        bases = state.get("base_lrs", self.base_lrs)
        if len(bases) != len(self.base_lrs):
            raise ValueError(
                f"{type(self).__name__} state has {len(bases)} base learning rates; this optimizer has "
                f"{len(self.base_lrs)} parameter groups"
            )
        self.base_lrs = [check_number("base_lr", b) for b in bases]
        epoch = state.get("last_epoch", 0)
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"{type(self).__name__} state: last_epoch must be a non-negative integer, got {epoch!r}")
        self._load_own(state)
        self.last_epoch = epoch
        self._apply(self.get_lr())

    def _load_own(self, state: dict[str, Any]) -> None:
        """A subclass restores its own entries of ``state``."""


def _plain(value: Any) -> Any:
    """A JSON value: tuples as lists, infinities kept for the file format to encode."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


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
        self.step_size = check_positive_int("step_size", step_size)
        self.gamma = check_number("gamma", gamma)
        super().__init__(optimizer)

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
        self.gamma = check_number("gamma", gamma)
        super().__init__(optimizer)

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
        self.T_max = check_positive_int("T_max", T_max)
        self.eta_min = check_number("eta_min", eta_min)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float) -> float:
        cos = math.cos(math.pi * self.last_epoch / self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1.0 + cos) / 2.0


class LinearLR(LRScheduler):
    """A linear ramp of the factor (a warm-up): ``lr = base_lr · (s + (e - s) · min(epoch, T) / T)``.

    ``torch.optim.lr_scheduler.LinearLR``: ``s = start_factor``,
    ``e = end_factor``, ``T = total_iters``; after ``T`` epochs the factor stays ``e``.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose groups' ``lr`` this schedule sets.
    start_factor : float in (0, 1], default 1/3
        The factor of epoch 0.
    end_factor : float in [0, 1], default 1.0
        The factor from epoch ``total_iters`` on.
    total_iters : int, default 5
        The length of the ramp.
    """

    def __init__(
        self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
    ) -> None:
        self.start_factor = check_number("start_factor", start_factor, 0.0, 1.0, open_low=True)
        self.end_factor = check_number("end_factor", end_factor, 0.0, 1.0)
        self.total_iters = check_positive_int("total_iters", total_iters)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float) -> float:
        done = min(self.total_iters, self.last_epoch) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * done)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (``torch.optim.lr_scheduler.OneCycleLR``): one rise and one fall, stepped per batch.

    The rate goes from ``max_lr / div_factor`` up to ``max_lr`` over the
    first ``pct_start`` of ``total_steps``, then down to
    ``max_lr / (div_factor · final_div_factor)`` (``three_phase``: back to
    the start first, then down), each stretch a half cosine (``"cos"``) or a
    line (``"linear"``)::

        cos:    lr = end + (start - end) · (1 + cos(π · pct)) / 2        linear: lr = start + (end - start) · pct

    With ``cycle_momentum`` the momentum (SGD's ``momentum``, Adam's ``β₁``)
    moves the other way, between ``max_momentum`` and ``base_momentum``.
    Stepping more than ``total_steps`` times is a ``ValueError``, as in PyTorch.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose groups' ``lr`` (and momentum) this schedule sets.
    max_lr : float or list of float
        The top of the cycle (one per parameter group, or one for all).
    total_steps : int, optional
        The steps of the cycle; or give ``epochs`` and ``steps_per_epoch``.
    epochs, steps_per_epoch : int, optional
        ``total_steps = epochs · steps_per_epoch``.
    pct_start : float, default 0.3
        The share of the steps spent rising.
    anneal_strategy : {"cos", "linear"}, default "cos"
        The shape of each stretch.
    cycle_momentum : bool, default True
        Move the momentum the other way.
    base_momentum, max_momentum : float, default 0.85, 0.95
        The momentum's range.
    div_factor : float, default 25
        ``initial_lr = max_lr / div_factor``.
    final_div_factor : float, default 1e4
        ``min_lr = initial_lr / final_div_factor``.
    three_phase : bool, default False
        Rise, fall back to ``initial_lr``, then fall to ``min_lr``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | Sequence[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        opt = _optimizer(self, optimizer)
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR needs total_steps, or epochs and steps_per_epoch")
            total_steps = check_positive_int("epochs", epochs) * check_positive_int("steps_per_epoch", steps_per_epoch)
        self.total_steps = check_positive_int("total_steps", total_steps)
        pct_start = check_number("pct_start", pct_start, 0.0, 1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = bool(cycle_momentum)
        self.three_phase = bool(three_phase)
        up = float(pct_start * self.total_steps) - 1
        if self.three_phase:
            self.phases = [
                (up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (self.total_steps - 1.0, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self.phases = [
                (up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (self.total_steps - 1.0, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        groups = opt.param_groups
        tops = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if len(tops) != len(groups):
            raise ValueError(f"OneCycleLR: max_lr has {len(tops)} values for {len(groups)} parameter groups")
        div = check_number("div_factor", div_factor, 0.0, open_low=True)
        final = check_number("final_div_factor", final_div_factor, 0.0, open_low=True)
        for group, top in zip(groups, tops):
            top = check_number("max_lr", top)
            group["initial_lr"] = top / div
            group["max_lr"] = top
            group["min_lr"] = group["initial_lr"] / final
        if self.cycle_momentum:
            if "momentum" not in opt.defaults and "betas" not in opt.defaults:
                raise ValueError("optimizer must support momentum or beta1 with cycle_momentum=True")
            self.use_beta1 = "betas" in opt.defaults
            for group in groups:
                group["max_momentum"] = check_number("max_momentum", max_momentum)
                group["base_momentum"] = check_number("base_momentum", base_momentum)
                if self.use_beta1:
                    group["betas"] = (group["max_momentum"], *tuple(group["betas"])[1:])
                else:
                    group["momentum"] = group["max_momentum"]
        super().__init__(opt)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"Tried to step {step} times. The specified number of total steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start, momentum = 0.0, None
            for i, (end, lr_from, lr_to, m_from, m_to) in enumerate(self.phases):
                if step <= end or i == len(self.phases) - 1:
                    pct = (step - start) / (end - start)
                    lrs.append(self._anneal(group[lr_from], group[lr_to], pct))
                    momentum = self._anneal(group[m_from], group[m_to], pct) if self.cycle_momentum else None
                    break
                start = end
            if momentum is not None:
                if self.use_beta1:
                    group["betas"] = (momentum, *tuple(group["betas"])[1:])
                else:
                    group["momentum"] = momentum
        return lrs

    def _state_names(self) -> tuple[str, ...]:
        return ("base_lrs", "last_epoch", "total_steps")


class SequentialLR(LRScheduler):
    """One schedule after another (``torch.optim.lr_scheduler.SequentialLR``): ``schedulers[i]`` from
    ``milestones[i-1]`` on; at a milestone the next one starts at its own epoch 0.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer every schedule acts on.
    schedulers : list of LRScheduler
        The schedules, in order (made on ``optimizer``).
    milestones : list of int
        The epochs where each next schedule takes over (one fewer than ``schedulers``).
    """

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int]) -> None:
        opt = _optimizer(self, optimizer)
        schedulers = list(schedulers)
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler")
        for index, sched in enumerate(schedulers):
            if not isinstance(sched, LRScheduler) or isinstance(sched, (SequentialLR, ReduceLROnPlateau)):
                raise TypeError(f"SequentialLR: scheduler {index} must be a schedule of epochs, got {sched!r}")
            if sched.optimizer is not opt:
                raise ValueError(
                    "Sequential Schedulers expects all schedulers to belong to the same optimizer, but got "
                    f"scheduler at index {index} to be different than the optimizer passed in."
                )
        milestones = [check_positive_int("milestone", m) for m in milestones]
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than the number of "
                f"milestone points, but got number of schedulers {len(schedulers)} and the number of milestones to "
                f"be equal to {len(milestones)}"
            )
        self.optimizer = opt
        self._schedulers, self._milestones = schedulers, milestones
        self.base_lrs = [float(group["initial_lr"]) for group in opt.param_groups]
        self.last_epoch = 0
        for group in opt.param_groups:  # back to the initial rates, then the first schedule's epoch 0
            group["lr"] = group["initial_lr"]
        schedulers[0].step(0)

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch in the schedule whose turn it is (a new one starts at its epoch 0)."""
        self.last_epoch += 1
        index = bisect.bisect_right(self._milestones, self.last_epoch)
        sched = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            sched.step(0)
        else:
            sched.step()

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "schedulers": [s.state_dict() for s in self._schedulers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("schedulers"), list):
            raise TypeError("SequentialLR.load_state_dict takes the dict of its state_dict()")
        if len(state["schedulers"]) != len(self._schedulers):
            raise ValueError(
                f"SequentialLR state holds {len(state['schedulers'])} schedules; this one has {len(self._schedulers)}"
            )
        self.last_epoch = int(state["last_epoch"])
        index = bisect.bisect_right(self._milestones, self.last_epoch)
        for i, (sched, sub) in enumerate(zip(self._schedulers, state["schedulers"])):
            if i != index:
                sched.load_state_dict(sub)
        self._schedulers[index].load_state_dict(state["schedulers"][index])  # the one in charge sets the rates


class ReduceLROnPlateau:
    """Divide the rate when a metric stops improving (``torch.optim.lr_scheduler.ReduceLROnPlateau``):
    ``step(metric)`` once per epoch.

    ``mode="min"`` with ``threshold_mode="rel"``: an improvement is
    ``metric < best · (1 - threshold)`` (``"abs"``: ``< best - threshold``;
    ``"max"`` the other way). After more than ``patience`` epochs without one,
    every group's ``lr ← max(lr · factor, min_lr)`` (a change smaller than
    ``eps`` is skipped), then ``cooldown`` epochs pass before counting again.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose groups' ``lr`` this schedule lowers.
    mode : {"min", "max"}, default "min"
        Whether the metric should fall or rise.
    factor : float in (0, 1), default 0.1
        The factor of each reduction.
    patience : int, default 10
        Epochs without improvement tolerated.
    threshold : float, default 1e-4
        The least change that counts as an improvement.
    threshold_mode : {"rel", "abs"}, default "rel"
        Relative or absolute ``threshold``.
    cooldown : int, default 0
        Epochs after a reduction before counting again.
    min_lr : float or list of float, default 0
        The smallest rate (per group).
    eps : float, default 1e-8
        The smallest change applied.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        opt = _optimizer(self, optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode!r} is unknown! (mode must be 'min' or 'max')")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode!r} is unknown! (it must be 'rel' or 'abs')")
        factor = check_number("factor", factor)
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        self.mode, self.factor, self.threshold_mode = mode, factor, threshold_mode
        self.patience = _non_negative("patience", patience)
        self.cooldown = _non_negative("cooldown", cooldown)
        self.threshold, self.eps = check_number("threshold", threshold), check_number("eps", eps)
        mins = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * len(opt.param_groups)
        if len(mins) != len(opt.param_groups):
            raise ValueError(f"expected {len(opt.param_groups)} min_lrs, got {len(mins)}")
        self.min_lrs = [check_number("min_lr", m) for m in mins]
        self.optimizer = opt
        self.base_lrs = [float(group["lr"]) for group in opt.param_groups]
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _better(self, value: float) -> bool:
        if self.mode == "min":
            bound = self.best * (1.0 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < bound
        bound = self.best * (self.threshold + 1.0) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > bound

    def get_last_lr(self) -> list[float]:
        """Every group's current learning rate, as in PyTorch."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self, metrics: Any = None, epoch: int | None = None) -> None:
        """One epoch with ``metrics`` (the monitored value): count, and lower the rates after ``patience``."""
        if metrics is None:
            raise TypeError("ReduceLROnPlateau.step(metrics) needs the monitored value (e.g. the validation loss)")
        current = float(metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        if self._better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, low in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, low)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """As a ``fit`` callback: steps with ``logs["val_loss"]`` (else ``"loss"``); ``ScheduleStepper``
        picks another metric."""
        self.step(logs["val_loss"] if "val_loss" in logs else logs["loss"])
        logs["lr"] = self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_epoch": self.last_epoch,
            "best": self.best,
            "num_bad_epochs": self.num_bad_epochs,
            "cooldown_counter": self.cooldown_counter,
            "lrs": [float(group["lr"]) for group in self.optimizer.param_groups],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise TypeError("ReduceLROnPlateau.load_state_dict takes the dict of its state_dict()")
        lrs = state.get("lrs", [g["lr"] for g in self.optimizer.param_groups])
        if len(lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"ReduceLROnPlateau state holds {len(lrs)} rates for {len(self.optimizer.param_groups)}")
        self.last_epoch = int(state.get("last_epoch", 0))
        self.best = float(state.get("best", self.best))
        self.num_bad_epochs = int(state.get("num_bad_epochs", 0))
        self.cooldown_counter = int(state.get("cooldown_counter", 0))
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = check_number("lr", lr)


def _non_negative(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value
