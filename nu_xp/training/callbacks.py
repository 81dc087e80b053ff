"""``fit`` callbacks, with Keras' names and semantics: ``EarlyStopping``, ``ModelCheckpoint``, ``CSVLogger``,
``ReduceLROnPlateau``, ``LearningRateScheduler``; and ``ScheduleStepper`` (a PyTorch-style schedule stepped per
epoch or per batch) and ``WeightAveraging`` (an ``AveragedModel`` updated as training goes).

A callback is any object with some of these hooks, called by ``fit``:

* ``set_callbacks(callbacks)`` — first, with every callback of the ``fit`` (``ModelCheckpoint`` saves their state);
* ``on_train_begin(model, optimizer)`` — before the first epoch;
* ``on_epoch_begin(epoch, logs)`` — before each epoch (0-based);
* ``on_train_batch_end(step, logs)`` — after each optimizer step (``logs``: ``{"epoch", "size"}``; nothing
  is read from the device);
* ``on_epoch_end(epoch, logs)`` — after each epoch, with its logs (extend them; return True, or set
  ``stop_training``, to stop);
* ``on_train_end(history)`` — once at the end (also after Ctrl-C);
* ``state_dict()`` / ``load_state_dict(state)`` — what a checkpoint keeps of the callback, so that
  ``load_checkpoint(..., callbacks=)`` resumes it exactly.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..layers import Layer
from ..model_file import save
from ..optim import Optimizer, unwrap
from ..optim.schedules import LRScheduler
from ..optim.schedules import ReduceLROnPlateau as PlateauSchedule
from ..validation import check_number
from .history import History

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "ScheduleStepper",
    "WeightAveraging",
]


class Callback:
    """Base class for ``fit`` callbacks; every hook is optional (see the module docstring for the others).

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


def _mode(mode: str, monitor: str) -> str:
    """Keras' ``mode``: ``"auto"`` is ``"max"`` for accuracies and r2, else ``"min"``."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if any(s in monitor for s in ("acc", "r2")) else "min"
    return mode


def _missing(who: str, monitor: str, logs: dict[str, float]) -> None:
    """Keras' warning for a monitored quantity that is not in the logs, naming those that are."""
    hint = " (pass validation_data to fit)" if monitor.startswith("val_") else ""
    warnings.warn(
        f"{who} monitors {monitor!r}, which is not in the logs; the logs hold {sorted(logs)}{hint}",
        RuntimeWarning,
        stacklevel=3,
    )


def _set_lr(optimizer: Any, lr: float) -> None:
    for group in unwrap(optimizer).param_groups:
        group["lr"] = lr


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the logs (``"loss"``, ``"val_accuracy"``…).
    patience : int, default 5
        Epochs without improvement before stopping.
    min_delta : float, default 0
        The least change that counts as an improvement.
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
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(float(min_delta))
        self.mode = _mode(mode, monitor)
        self.restore_best_weights = restore_best_weights
        self.best = float("inf") if self.mode == "min" else -float("inf")
        self.best_epoch = -1
        self.stopped_epoch: int | None = None
        self._wait = 0
        self._best_state: dict[str, np.ndarray] | None = None
        self._model: Layer | None = None

    def on_train_begin(self, model: Layer, optimizer: Optimizer) -> None:
        self._model = model
        self.stop_training, self.stopped_epoch = False, None

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

    def state_dict(self) -> dict[str, Any]:
        """The best value, its epoch and the epochs waited (and the best weights, when restoring them)."""
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self._wait, "best_state": self._best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self._wait = float(state["best"]), int(state["best_epoch"]), int(state["wait"])
        self._best_state = state.get("best_state")


class ModelCheckpoint(Callback):
    """Save the model after an epoch, with its optimizer and schedule, so a run resumes (Keras' ``ModelCheckpoint``).

    The file is ``filepath`` formatted with ``epoch`` (1-based, as Keras) and
    the epoch's logs (``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``), written by
    [`nu_xp.save`][nu_xp.model_file.save] with ``optimizer=`` (its state and
    every layer's extra state: Dropout's generator), ``scheduler=`` (the
    first schedule among the ``fit``'s callbacks, or the one given) and
    ``extra={"epoch": …, "logs": …, "callbacks": [every callback's state]}``.
    ``load_checkpoint(path, model, optimizer, scheduler=…, callbacks=…)``
    then returns that ``extra``, and ``fit(…, initial_epoch=extra["epoch"] + 1)``
    continues exactly where the run stopped. The folder is created if needed;
    one that cannot be written to is an error before training starts.

    Parameters
    ----------
    filepath : str or path-like
        Where to write (``str.format`` fields: ``epoch`` and the logs' names).
    monitor : str, default "val_loss"
        What ``save_best_only`` compares.
    save_best_only : bool, default False
        Write only when ``monitor`` improved (a missing one warns, naming the logs there are).
    mode : {"auto", "min", "max"}, default "auto"
        Whether ``monitor`` should fall or rise ("auto": rise for accuracies and r2).
    scheduler : schedule, optional
        The schedule to save (default: the first one among the ``fit``'s callbacks).
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        scheduler: Any = None,
    ) -> None:
        self.filepath = os.fspath(filepath)
        self.monitor, self.save_best_only = monitor, bool(save_best_only)
        self.mode = _mode(mode, monitor)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.scheduler = scheduler
        self.last_saved: str | None = None
        self._callbacks: list[Any] = []
        self._model: Layer | None = None
        self._optimizer: Any = None

    def set_callbacks(self, callbacks: list[Any]) -> None:
        """Every callback of the ``fit``: their states go into each checkpoint (and the first schedule)."""
        self._callbacks = callbacks

    def on_train_begin(self, model: Layer, optimizer: Optimizer) -> None:
        self._model, self._optimizer = model, optimizer
        folder = Path(self.filepath).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".nu_xp-check-"):
                pass
        except OSError as exc:
            raise PermissionError(
                f"ModelCheckpoint cannot write into {folder}: {exc}; choose a folder you may write to"
            ) from exc
        if self.scheduler is None:
            self.scheduler = next(
                (s for s in (getattr(cb, "scheduler", cb) for cb in self._callbacks) if _is_schedule(s)), None
            )

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                _missing("ModelCheckpoint(save_best_only=True)", self.monitor, logs)
                return
            if not (current < self.best if self.mode == "min" else current > self.best):
                return
            self.best = float(current)
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"ModelCheckpoint filepath {self.filepath!r} names {exc}, which is not epoch nor in the logs "
                f"{sorted(logs)}"
            ) from None
        states = [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in self._callbacks]
        extra = {"epoch": epoch, "logs": dict(logs), "callbacks": states, "callback_classes": _classes(self._callbacks)}
        assert self._model is not None
        save(self._model, path, optimizer=self._optimizer, scheduler=self.scheduler, extra=extra)
        self.last_saved = path

    def state_dict(self) -> dict[str, Any]:
        """The best value so far (``save_best_only``)."""
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])


def _is_schedule(thing: Any) -> bool:
    return isinstance(thing, (LRScheduler, PlateauSchedule))


def _classes(callbacks: list[Any]) -> list[str]:
    return [type(cb).__name__ for cb in callbacks]


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file (Keras' ``CSVLogger``): ``epoch`` (0-based) and every log.

    Parameters
    ----------
    filename : str or path-like
        The file (its folder is created if needed).
    separator : str, default ","
        Between the values.
    append : bool, default False
        Add to an existing file (its header kept) instead of starting a new one.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        self.filename, self.separator, self.append = os.fspath(filename), separator, bool(append)
        self._file: Any = None
        self._writer: Any = None
        self._keys: list[str] | None = None

    def on_train_begin(self, model: Layer, optimizer: Optimizer) -> None:
        path = Path(self.filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        header_there = self.append and path.is_file() and path.stat().st_size > 0
        if header_there:
            with open(path, newline="") as f:
                first = f.readline().strip()
            self._keys = first.split(self.separator)[1:] if first else None
        self._file = open(path, "a" if self.append else "w", newline="")
        self._writer = None
        if not header_there:
            self._keys = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self._file is None:
            return
        if self._keys is None:
            self._keys = sorted(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator)
            self._writer.writerow(["epoch", *self._keys])
        if self._writer is None:
            self._writer = csv.writer(self._file, delimiter=self.separator)
        self._writer.writerow([epoch, *(logs.get(k, "NA") for k in self._keys)])
        self._file.flush()

    def on_train_end(self, history: History) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ReduceLROnPlateau(Callback):
    """Lower the learning rate when ``monitor`` stops improving (Keras' ``ReduceLROnPlateau``).

    After ``patience`` epochs without an improvement of ``min_delta``, every
    parameter group's rate becomes ``max(lr · factor, min_lr)``; then
    ``cooldown`` epochs pass before counting again. A ``monitor`` missing from
    the logs warns, naming the logs there are. (``nu_xp.optim.ReduceLROnPlateau``
    is PyTorch's schedule of the same idea.)

    Parameters
    ----------
    monitor : str, default "val_loss"
        The quantity watched.
    factor : float in (0, 1), default 0.1
        The factor of each reduction.
    patience : int, default 10
        Epochs without improvement before a reduction.
    mode : {"auto", "min", "max"}, default "auto"
        Whether ``monitor`` should fall or rise.
    min_delta : float, default 1e-4
        The least change that counts as an improvement.
    cooldown : int, default 0
        Epochs after a reduction before counting again.
    min_lr : float, default 0
        The smallest rate.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        factor = check_number("factor", factor)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0, got {factor}")
        self.monitor, self.factor, self.mode = monitor, factor, _mode(mode, monitor)
        self.patience, self.cooldown = _count("patience", patience), _count("cooldown", cooldown)
        self.min_delta, self.min_lr = check_number("min_delta", min_delta), check_number("min_lr", min_lr)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = self.cooldown_counter = 0
        self._optimizer: Any = None

    def on_train_begin(self, model: Layer, optimizer: Optimizer) -> None:
        self._optimizer = optimizer

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        current = logs.get(self.monitor)
        lr = float(unwrap(self._optimizer).param_groups[0]["lr"])
        logs["learning_rate"] = lr
        if current is None:
            _missing("ReduceLROnPlateau", self.monitor, logs)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        better = current < self.best - self.min_delta if self.mode == "min" else current > self.best + self.min_delta
        if better:
            self.best, self.wait = float(current), 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and lr > float(np.float32(self.min_lr)):
                _set_lr(self._optimizer, max(lr * self.factor, self.min_lr))
                self.cooldown_counter, self.wait = self.cooldown, 0

    def state_dict(self) -> dict[str, Any]:
        """The best value, the epochs waited and the cooldown left."""
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


class LearningRateScheduler(Callback):
    """Set the learning rate before each epoch from ``schedule(epoch, lr) -> new lr`` (Keras' callback;
    ``schedule(epoch)`` works too). The rate of the epoch is logged as ``learning_rate``.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch, lr)`` (``epoch`` 0-based, ``lr`` the current rate) returning the epoch's rate.
    """

    def __init__(self, schedule: Any) -> None:
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler takes a function schedule(epoch, lr), got {schedule!r}")
        self.schedule = schedule
        try:
            self._two = len(inspect.signature(schedule).parameters) >= 2
        except (TypeError, ValueError):
            self._two = True
        self._optimizer: Any = None

    def on_train_begin(self, model: Layer, optimizer: Optimizer) -> None:
        self._optimizer = optimizer

    def on_epoch_begin(self, epoch: int, logs: dict[str, float]) -> None:
        lr = float(unwrap(self._optimizer).param_groups[0]["lr"])
        new = self.schedule(epoch, lr) if self._two else self.schedule(epoch)
        try:
            new = float(new)
        except (TypeError, ValueError):
            raise ValueError(f"the schedule's output must be a number, got {new!r} at epoch {epoch}") from None
        if not math.isfinite(new) or new < 0:
            raise ValueError(f"the schedule's output must be a non-negative finite number, got {new} at epoch {epoch}")
        _set_lr(self._optimizer, new)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        logs["learning_rate"] = float(unwrap(self._optimizer).param_groups[0]["lr"])


class ScheduleStepper(Callback):
    """Step a PyTorch-style schedule from ``fit``: once per epoch, or once per optimizer step
    (``interval="step"``, for ``OneCycleLR`` and warm-ups counted in steps); a ``ReduceLROnPlateau``
    schedule is stepped with ``logs[monitor]``. The first group's rate is logged as ``lr``.

    Parameters
    ----------
    scheduler : schedule
        A schedule of ``nu_xp.optim`` (``StepLR``, ``OneCycleLR``, ``SequentialLR``, ``ReduceLROnPlateau``…).
    interval : {"epoch", "step"}, default "epoch"
        When to step it (Lightning's name).
    monitor : str, default "val_loss"
        What a ``ReduceLROnPlateau`` schedule is given (a missing one warns).
    """

    def __init__(self, scheduler: Any, interval: str = "epoch", monitor: str = "val_loss") -> None:
        if not _is_schedule(scheduler) and not isinstance(scheduler, LRScheduler):
            raise TypeError(f"ScheduleStepper steps a nu_xp.optim schedule, got {type(scheduler).__name__}")
        if interval not in ("epoch", "step"):
            raise ValueError(f"interval must be 'epoch' or 'step', got {interval!r}")
        if interval == "step" and isinstance(scheduler, PlateauSchedule):
            raise ValueError("ReduceLROnPlateau needs a metric of each epoch: use interval='epoch'")
        self.scheduler, self.interval, self.monitor = scheduler, interval, monitor
        self._optimizer: Any = None

    def on_train_begin(self, model: Layer, optimizer: Optimizer) -> None:
        if unwrap(optimizer) is not self.scheduler.optimizer:
            raise ValueError(
                f"ScheduleStepper: the schedule ({type(self.scheduler).__name__}) was made for another optimizer "
                "than the one fit trains with; make it on that optimizer"
            )

    def on_train_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.interval == "epoch":
            if isinstance(self.scheduler, PlateauSchedule):
                if self.monitor not in logs:
                    _missing("ScheduleStepper(ReduceLROnPlateau)", self.monitor, logs)
                else:
                    self.scheduler.step(logs[self.monitor])
            else:
                self.scheduler.step()
        logs["lr"] = float(self.scheduler.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        """The schedule's state."""
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


class WeightAveraging(Callback):
    """Update an [`AveragedModel`][nu_xp.optim.swa_utils.AveragedModel] from the trained model after every
    optimizer step (``interval="step"``) or epoch: EMA or SWA weights kept beside training.

    Parameters
    ----------
    averaged : AveragedModel
        The average, made from the model ``fit`` trains.
    interval : {"step", "epoch"}, default "step"
        When to update it.
    """

    def __init__(self, averaged: Any, interval: str = "step") -> None:
        if not hasattr(averaged, "update_parameters"):
            raise TypeError(f"WeightAveraging takes an AveragedModel, got {type(averaged).__name__}")
        if interval not in ("epoch", "step"):
            raise ValueError(f"interval must be 'epoch' or 'step', got {interval!r}")
        self.averaged, self.interval = averaged, interval
        self._model: Layer | None = None

    def on_train_begin(self, model: Layer, optimizer: Optimizer) -> None:
        self._model = model

    def on_train_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        if self.interval == "step" and self._model is not None:
            self.averaged.update_parameters(self._model)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.interval == "epoch" and self._model is not None:
            self.averaged.update_parameters(self._model)

    def state_dict(self) -> dict[str, Any]:
        """The averaged model's arrays (host copies) and the number of updates."""
        return {"state": self.averaged.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state["state"])
