"""``fit``: the training loop (forward, loss, backward, step) over shuffled minibatches.

One epoch, for each minibatch ``(x_b, y_b)`` of a permutation drawn from
``numpy.random.default_rng(seed)``::

    pred = model.forward(x_b)
    value = loss.forward(pred, y_b)
    optimizer.zero_grad(); model.backward(loss.backward()); optimizer.step()

Training loss and metrics are streamed over the epoch's batches (in training
mode, as Keras does); validation loss and metrics are computed at the end of
the epoch in eval mode. Everything is recorded in a :class:`History`.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .backend import asarray, dtype_kind, namespace_of
from .init import host_rng
from .layers import Layer, Sequential, stable_sigmoid
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, Loss
from .metrics import Metric, make_metric
from .optim import Optimizer
from .validation import check_positive_int

__all__ = ["Callback", "EarlyStopping", "History", "evaluate", "fit"]


class History:
    """Per-epoch record of a ``fit``: ``history["loss"]``, ``history["val_accuracy"]``…

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


def _to_model(x: Any, model: Layer, name: str, *, labels: bool = False) -> Any:
    """Move data onto the model's backend; floats (and, unless labels, ints) take the model dtype."""
    be = model.backend_info
    arr = asarray(x, like=be)
    kind = dtype_kind(be.xp, arr.dtype)
    if kind in ("b", "c"):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if labels and kind == "i":
        return arr
    return be.xp.astype(arr, be.dtype) if arr.dtype != be.dtype else arr


def _prepare_xy(model: Layer, loss: Loss, x: Any, y: Any, what: str) -> tuple[Any, Any]:
    labels = isinstance(loss, CrossEntropyLoss)
    xs = _to_model(x, model, f"{what} x")
    ys = _to_model(y, model, f"{what} y", labels=labels)
    if xs.ndim == 0 or ys.ndim == 0:
        raise ValueError(f"{what} x and y need a sample axis, got shapes {tuple(xs.shape)} and {tuple(ys.shape)}")
    if xs.shape[0] != ys.shape[0]:
        raise ValueError(f"{what} x has {xs.shape[0]} samples but y has {ys.shape[0]}")
    if ys.ndim == 1 and not (labels and dtype_kind(model.backend_info.xp, ys.dtype) == "i"):
        ys = model.backend_info.xp.reshape(ys, (-1, 1))  # a 1-D target for a one-output model
    return xs, ys


def _progress_bar(enabled: bool, total: int) -> Any:
    if not enabled or not getattr(sys.stderr, "isatty", lambda: False)():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="batch", leave=True, dynamic_ncols=True)


def fit(
    model: Layer,
    loss: Loss,
    optimizer: Optimizer,
    x: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    validation_data: tuple[Any, Any] | None = None,
    metrics: Sequence[str | Callable | Metric] = (),
    progress: bool = True,
    callbacks: Iterable[Any] = (),
) -> History:
    """Train ``model`` on ``(x, y)`` and return the per-epoch :class:`History`.

    Parameters
    ----------
    model : Layer
        Usually a :class:`~nu_xp.layers.Sequential`.
    loss : Loss
        E.g. ``CrossEntropyLoss()`` (y: integer labels) or ``MSELoss()``.
    optimizer : nu_xp.optim.Optimizer
        Built on ``model.parameters()``.
    x, y : arrays or array-likes
        Moved to the model's backend; real x is cast to the model's dtype, as
        is y except integer labels for ``CrossEntropyLoss``. A 1-D y for any
        other loss is treated as one column, shape (N, 1).
    epochs : int
        Number of passes over the data.
    batch_size : int or None
        Minibatch size; None: the whole set in one batch.
    shuffle : bool, default True
        Draw a new sample order each epoch from ``numpy.random.default_rng(seed)``.
    seed : int or None
        Seed of the shuffling; None: the global generator (``nu_xp.manual_seed``).
    validation_data : (x_val, y_val), optional
        Evaluated in eval mode after every epoch (``val_loss``, ``val_<metric>``).
    metrics : sequence of str or callable
        ``"accuracy"``, ``"binary_accuracy"``, ``"mse"``, ``"mae"``, ``"r2"``,
        or ``f(y_true, y_pred) -> float`` (see :mod:`nu_xp.metrics`). With
        ``BCEWithLogitsLoss`` they see probabilities σ(pred).
    progress : bool, default True
        Show a tqdm bar with the running loss (only when stderr is a terminal
        and tqdm is installed).
    callbacks : iterable
        Objects with optional ``on_train_begin(model, optimizer)``,
        ``on_epoch_end(epoch, logs) -> bool`` (True stops) and
        ``on_train_end(history)``: :class:`EarlyStopping`, the schedules of
        :mod:`nu_xp.optim`, or your own.

    Returns
    -------
    History
        Ctrl-C stops training cleanly after the current batch and returns the
        epochs completed so far (``history.interrupted`` is then True).

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    >>> y = np.array([0, 1, 1, 0], dtype=float)
    >>> model = nu_xp.Sequential(nu_xp.Linear(2, 8, seed=0), nu_xp.Tanh(), nu_xp.Linear(8, 1, seed=1))
    >>> opt = nu_xp.optim.Adam(model.parameters(), lr=0.05)
    >>> h = nu_xp.fit(model, nu_xp.BCEWithLogitsLoss(), opt, x, y, epochs=300, metrics=["accuracy"], progress=False)
    >>> h["accuracy"][-1]
    1.0
    """
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a nu_xp Layer, got {type(model).__name__}")
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a nu_xp loss (e.g. nu_xp.MSELoss()), got {type(loss).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a nu_xp.optim optimizer, got {type(optimizer).__name__}")
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size, allow_none=True)
    callbacks = list(callbacks)
    xs, ys = _prepare_xy(model, loss, x, y, "training")
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (x_val, y_val)")
        val = _prepare_xy(model, loss, validation_data[0], validation_data[1], "validation")
    train_metrics = [make_metric(m) for m in metrics]
    probabilities = isinstance(loss, BCEWithLogitsLoss)

    xp = model.backend_info.xp
    device = model.backend_info.device
    n = xs.shape[0]
    bs = n if batch_size is None else min(int(batch_size), n)
    steps = -(-n // bs)
    rng = host_rng(seed)
    history = History()
    bar = _progress_bar(progress, epochs * steps)
    for cb in callbacks:
        if hasattr(cb, "on_train_begin"):
            cb.on_train_begin(model, optimizer)
    model.train()
    try:
        for epoch in range(epochs):
            if bar is not None:
                bar.set_description(f"epoch {epoch + 1}/{epochs}")
            if shuffle and n > 1:
                order = xp.asarray(rng.permutation(n), device=device)
                xe, ye = xp.take(xs, order, axis=0), xp.take(ys, order, axis=0)
            else:
                xe, ye = xs, ys
            for m in train_metrics:
                m.reset()
            total: Any = 0.0
            last_shown = time.monotonic()
            for start in range(0, n, bs):
                stop = min(start + bs, n)
                xb, yb = xe[start:stop, ...], ye[start:stop, ...]
                pred = model.forward(xb)
                value = loss.forward(pred, yb)
                optimizer.zero_grad()
                if isinstance(model, Sequential):
                    model.backward(loss.backward(), input_grad=False)
                else:
                    model.backward(loss.backward())
                optimizer.step()
                total = total + value * xb.shape[0]
                if train_metrics:
                    shown = stable_sigmoid(xp, pred) if probabilities else pred
                    for m in train_metrics:
                        m.update(shown, yb)
                if bar is not None:
                    bar.update(1)
                    now = time.monotonic()
                    if now - last_shown > 0.2:
                        bar.set_postfix(loss=f"{float(total) / (start + xb.shape[0]):.4g}", refresh=False)
                        last_shown = now
            logs = {"loss": float(total) / n}
            logs.update({m.name: m.result() for m in train_metrics})
            if val is not None:
                logs.update(evaluate(model, loss, val[0], val[1], metrics, batch_size=batch_size, prefix="val_"))
            stop = False
            for cb in callbacks:
                if hasattr(cb, "on_epoch_end"):
                    stop = bool(cb.on_epoch_end(epoch, logs)) or getattr(cb, "stop_training", False) or stop
            history.append(epoch, logs)
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=True)
            if stop:
                history.stopped_early = True
                break
    except KeyboardInterrupt:
        history.interrupted = True
        warnings.warn(
            f"training interrupted after {len(history)} complete epoch(s); returning the history so far",
            RuntimeWarning,
            stacklevel=2,
        )
    finally:
        if bar is not None:
            bar.close()
    for cb in callbacks:
        if hasattr(cb, "on_train_end"):
            cb.on_train_end(history)
    return history


def evaluate(
    model: Layer,
    loss: Loss,
    x: Any,
    y: Any,
    metrics: Sequence[str | Callable | Metric] = (),
    *,
    batch_size: int | None = None,
    prefix: str = "",
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``(x, y)`` in eval mode: ``{"loss": ..., "accuracy": ...}``."""
    xs, ys = _prepare_xy(model, loss, x, y, "evaluation")
    pred = model.predict(xs, batch_size=batch_size)
    logs = {f"{prefix}loss": float(loss.forward(pred, ys))}
    if metrics:
        shown = stable_sigmoid(namespace_of(pred), pred) if isinstance(loss, BCEWithLogitsLoss) else pred
        for spec in metrics:
            m = make_metric(spec)
            m.reset()
            m.update(shown, ys)
            logs[f"{prefix}{m.name}"] = m.result()
    return logs
