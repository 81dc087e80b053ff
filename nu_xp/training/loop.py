"""The training loop of nu_xp, in named steps, and ``evaluate``.

One epoch, for each minibatch ``(x_b, y_b)`` of a permutation drawn from
``numpy.random.default_rng(seed)``::

    optimizer.zero_grad()
    pred = model(x_b)
    value = loss.forward(pred, y_b)
    model.backward(loss.backward(), input_grad=False)
    hooks.after_backward(...)          # nothing, unless a loop needs it
    optimizer.step()

The steps are separate functions ([`prepare_data`][], [`minibatches`][],
[`train_step`][], [`run_epoch`][], [`train`][]). There is ONE loop:
``fit`` runs [`train`][] with the plain [`StepHooks`][]; the
data-parallel ``fit`` ([`data_parallel`][nu_xp.training.data_parallel]) runs it with hooks that shard
each minibatch over the MPI ranks and average the gradients; the
scikit-learn estimators ([`nu_xp.sklearn`][nu_xp.sklearn]) run [`run_epoch`][] with a
hook that adds the L2 penalty. [`FitOptions`][] holds ``fit``'s options. Training loss and metrics are streamed over
the epoch's batches (in training mode, as Keras does); validation loss and
metrics are computed at the end of the epoch in eval mode. Everything is
recorded in a [`History`][nu_xp.training.history.History].
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..backends import asarray, dtype_kind, ops_of
from ..errors import NonFiniteLossError
from ..functional import sigmoid
from ..grad_mode import no_grad
from ..initializers import host_rng
from ..layers import Layer
from ..losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, Loss
from ..metrics import Metric, make_metrics
from ..optim import Optimizer, unwrap
from ..validation import check_positive_int
from .history import History
from .hooks import PLAIN, StepHooks
from .precision import check_precision, with_precision
from .progress import Progress, make_progress
from .threads import auto_threads, blas_threads, check_threads

__all__ = [
    "FitOptions",
    "NonFiniteLossError",
    "check_fit_arguments",
    "evaluate",
    "fit_local",
    "minibatches",
    "prepare_data",
    "run_epoch",
    "train",
    "train_step",
]


#: losses of independent binary outputs: their "accuracy" is binary accuracy (as Keras)
BCE_LOSSES = (BCELoss, BCEWithLogitsLoss)

# ---------------------------------------------------------------------------- step 1: data, once


def _to_model(x: Any, model: Layer, name: str, *, labels: bool = False, check_finite: bool = True) -> Any:
    """Move data onto the model's backend; floats (and, unless labels, ints) take the model dtype.

    Anything but real numbers (booleans, complex numbers, dates, strings,
    objects) is a ``TypeError``; NaN or Inf a ``ValueError`` unless ``check_finite`` is off.
    """
    dtypes = getattr(x, "dtypes", None)  # a pandas DataFrame: name the columns that are not numbers
    if dtypes is not None and hasattr(x, "columns") and hasattr(dtypes, "items"):
        bad = {str(col): str(dt) for col, dt in dtypes.items() if getattr(dt, "kind", "O") not in "fiub"}
        if bad:
            raise TypeError(
                f"{name}: columns {list(bad)} do not hold numbers (dtypes {list(bad.values())}); "
                "encode or drop them first (e.g. pandas.get_dummies or .astype(float))"
            )
    if not hasattr(x, "shape") or isinstance(x, np.ndarray):
        host = np.asarray(x)
        if host.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers, got dtype {host.dtype} (convert it first)")
    be = model.backend
    arr = asarray(x, like=be)
    kind = dtype_kind(be.xp, arr.dtype)
    if kind not in ("f", "i"):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype} (convert it first)")
    if check_finite and kind == "f" and not be.ops.all(be.xp.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or Inf values; clean the data (or pass check_inputs=False to fit)")
    if labels and kind == "i":
        return arr
    return be.ops.astype(arr, be.dtype) if arr.dtype != be.dtype else arr


def prepare_data(
    model: Layer, loss: Loss, x: Any, y: Any, what: str = "training", *, check_finite: bool = True
) -> tuple[Any, Any]:
    """``(x, y)`` on the model's backend and dtype, checked once for the whole of ``fit``.

    Integer labels stay integers for ``CrossEntropyLoss`` (which refuses a
    1-D float ``y``: class labels must be integers); a 1-D ``y`` for any other
    loss becomes one column ``(N, 1)``. Empty data, mismatched sample counts,
    non-real values and (with ``check_finite``) NaN or Inf raise.
    """
    for name, value in (("x", x), ("y", y)):
        if value is None:
            raise TypeError(f"{what} {name} is None; fit and evaluate need both inputs x and targets y")
    labels = isinstance(loss, CrossEntropyLoss)
    xs = _to_model(x, model, f"{what} x", labels=model.input_is_indices(), check_finite=check_finite)
    ys = _to_model(y, model, f"{what} y", labels=labels, check_finite=check_finite)
    if xs.ndim == 0 or ys.ndim == 0:
        raise ValueError(f"{what} x and y need a sample axis, got shapes {tuple(xs.shape)} and {tuple(ys.shape)}")
    if xs.shape[0] != ys.shape[0]:
        raise ValueError(f"{what} x has {xs.shape[0]} samples but y has {ys.shape[0]}")
    if xs.shape[0] == 0:
        raise ValueError(f"{what} data is empty (x has shape {tuple(xs.shape)}); pass at least one sample")
    label_kind = dtype_kind(model.backend.xp, ys.dtype)
    if labels and ys.ndim == 1 and label_kind != "i":
        raise TypeError(
            f"CrossEntropyLoss needs integer class labels for a 1-D {what} y, got floats of shape {tuple(ys.shape)}; "
            "cast them (y.astype(int)) or pass one-hot targets of shape (N, C)"
        )
    if ys.ndim == 1 and not labels:
        ys = model.backend.xp.reshape(ys, (-1, 1))  # a 1-D target for a one-output model
    return xs, ys


def prepare_validation(
    model: Layer, loss: Loss, validation_data: Any, *, check_finite: bool = True
) -> tuple[Any, Any] | None:
    """``validation_data`` (a pair, or None) through [`prepare_data`][]."""
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("validation_data must be a pair (x_val, y_val)")
    x_val, y_val = validation_data
    return prepare_data(model, loss, x_val, y_val, "validation", check_finite=check_finite)


# ---------------------------------------------------------------------------- step 2: minibatches


def minibatches(
    xs: Any, ys: Any, batch_size: int, *, shuffle: bool, rng: np.random.Generator
) -> Iterator[tuple[Any, Any]]:
    """``(x_b, y_b)`` over one epoch: a fresh permutation from ``rng`` when ``shuffle``, else in order."""
    n = xs.shape[0]
    if shuffle and n > 1:
        ops = ops_of(xs)
        order = ops.asarray(rng.permutation(n), device=ops.device_of(xs))
        xs, ys = ops.xp.take(xs, order, axis=0), ops.xp.take(ys, order, axis=0)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield xs[start:stop, ...], ys[start:stop, ...]


# ---------------------------------------------------------------------------- step 3: one update


def train_step(
    model: Layer, loss: Loss, optimizer: Optimizer, xb: Any, yb: Any, hooks: StepHooks = PLAIN
) -> tuple[Any, Any, Any]:
    """One update: forward, loss, backward, ``hooks.after_backward``, step.

    Returns ``(the minibatch's summed loss, pred, targets)`` with ``pred`` and
    ``targets`` those of the rows this process computed (``hooks.shard``).
    The model's first layer is told that nobody needs the gradient with
    respect to the data (``input_grad=False``), which saves a GEMM.
    """
    rows = xb.shape[0]
    xs, ys = hooks.shard(xb, yb)
    optimizer.zero_grad()
    pred, batch_loss = None, 0.0
    if xs.shape[0]:
        batch_loss, pred = hooks.forward_backward(model, loss, xs, ys)
    batch_loss = hooks.after_backward(batch_loss, xs.shape[0], rows)
    hooks.step(optimizer)
    return batch_loss, pred, ys


# ---------------------------------------------------------------------------- step 4: one epoch


def _shown(loss: Loss, pred: Any) -> Any:
    """What metrics see: probabilities σ(pred) for ``BCEWithLogitsLoss``, else ``pred``."""
    return sigmoid(ops_of(pred), pred) if isinstance(loss, BCEWithLogitsLoss) else pred


def run_epoch(
    model: Layer,
    loss: Loss,
    optimizer: Optimizer,
    batches: Iterable[tuple[Any, Any]],
    metrics: Sequence[Metric] = (),
    progress: Progress | None = None,
    *,
    epoch: int = 0,
    stop_on_nan: bool = True,
    hooks: StepHooks = PLAIN,
) -> dict[str, float]:
    """Train over ``batches`` once; return ``{"loss": mean loss over samples, <metric>: ...}``.

    The one epoch loop of nu_xp: ``fit``, ``fit(distributed=True)`` and the
    scikit-learn estimators all run it, each with its own ``hooks``. With
    ``stop_on_nan``, a NaN or infinite epoch loss raises
    [`NonFiniteLossError`][nu_xp.errors.NonFiniteLossError] naming ``epoch`` and the first bad step (the
    values are checked once per epoch, so a GPU is not synchronized per step).
    """
    for m in metrics:
        m.reset()
    total: Any = 0.0
    seen = 0
    sums: list[Any] = []
    for xb, yb in batches:
        batch_loss, pred, ys = train_step(model, loss, optimizer, xb, yb, hooks)
        total = total + batch_loss
        seen += xb.shape[0]
        if stop_on_nan:
            sums.append(batch_loss)
        if metrics and pred is not None:
            shown = _shown(loss, pred)
            for m in metrics:
                m.update(shown, ys)
        if progress is not None:
            progress.step(total, seen)
    hooks.end_epoch(model, metrics)
    logs = {"loss": float(total) / max(seen, 1)}
    if stop_on_nan and not math.isfinite(logs["loss"]):
        step = next((i for i, v in enumerate(sums) if not math.isfinite(float(v))), len(sums) - 1)
        raise NonFiniteLossError(
            f"the training loss became {logs['loss']} at epoch {epoch}, step {step} (both counted from 0); "
            "lower the learning rate or check the data (fit(..., stop_on_nan=False) trains on regardless)"
        )
    logs.update({m.name: m.result() for m in metrics})
    return logs


# ---------------------------------------------------------------------------- the loop


@dataclass
class FitOptions:
    """Every option of [`nu_xp.fit`][nu_xp.training.fit] but the data, in one object (see ``fit`` for what each means).

    ``fit`` builds it from its keywords; the loops read it. A new option is
    one field here and one keyword of ``fit``.

    Parameters
    ----------
    epochs, batch_size, shuffle, seed, validation_data, metrics, progress, callbacks : as ``fit``
        What [`nu_xp.fit`][nu_xp.training.fit.fit] says of its keyword of the same name.
    check_inputs : bool, default True
        Check the data (shapes, finite values) before training.
    stop_on_nan : bool, default True
        Raise ``NonFiniteLossError`` when the loss becomes NaN or infinite.
    distributed : bool, default False
        Train data-parallel over MPI.
    validation_split : float, default 0
        Hold out this share of the data for validation.
    verbose : "auto", 0, 1 or 2
        How much to report.
    precision : {"32", "bf16-mixed", "16-mixed"}, default "32"
        Mixed precision ([`nu_xp.training.precision`][nu_xp.training.precision]).
    threads : "auto", int or None, default "auto"
        BLAS threads while training ([`nu_xp.training.threads`][nu_xp.training.threads]).
    """

    epochs: int
    batch_size: int | None = None
    shuffle: bool = True
    seed: Any = None
    validation_data: tuple[Any, Any] | None = None
    metrics: Sequence[str | Callable | Metric] = ()
    progress: bool = True
    callbacks: Iterable[Any] = ()
    check_inputs: bool = True
    stop_on_nan: bool = True
    distributed: bool = False
    validation_split: float = 0.0
    verbose: int | str = "auto"
    precision: str = "32"
    threads: Any = "auto"

    @classmethod
    def from_keywords(cls, values: dict[str, Any]) -> FitOptions:
        """The options among ``values`` (a function's ``locals()``), every other name ignored."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def check_model_and_loss(model: Any, loss: Any, call: str) -> None:
    """``TypeError`` unless ``model`` is a nu_xp layer and ``loss`` a nu_xp loss (named in ``call``, e.g.
    ``"fit(model, loss, optimizer, x, y)"``); ``ValueError`` for a loss with ``reduction="none"``: training
    and evaluation need one number per batch."""
    if not isinstance(model, Layer) or model.is_loss:
        raise TypeError(
            f"{call}: model must be a nu_xp Layer, got {type(model).__name__}"
            + (" (a loss: the model comes first)" if isinstance(model, Loss) else "")
        )
    if not isinstance(loss, Loss):
        raise TypeError(f"{call}: loss must be a nu_xp loss (e.g. nu_xp.MSELoss()), got {type(loss).__name__}")
    if loss.reduction == "none":
        raise ValueError(
            f"{call.split('(')[0]} needs a loss that reduces to one number; {type(loss).__name__} has "
            "reduction='none' (use 'mean', the default, or 'sum')"
        )


def check_fit_arguments(model: Any, loss: Any, optimizer: Any, options: FitOptions) -> FitOptions:
    """``options`` checked (a copy, ``precision`` and ``threads`` in their plain form); ``TypeError``/``ValueError``
    for a model, loss, optimizer or size that ``fit`` cannot use."""
    check_model_and_loss(model, loss, "fit(model, loss, optimizer, x, y)")
    if not isinstance(unwrap(optimizer), Optimizer):
        raise TypeError(f"optimizer must be a nu_xp.optim optimizer, got {type(optimizer).__name__}")
    mine = {id(p) for p in model.parameters()}
    if mine and not any(id(p) in mine for p in optimizer.params):
        raise ValueError(
            "the optimizer holds none of this model's parameters, so training would change nothing; "
            "build it from this model: optimizer = nu_xp.optim.Adam(model.parameters())"
        )
    return dataclasses.replace(
        options,
        epochs=check_positive_int("epochs", options.epochs),
        batch_size=check_positive_int("batch_size", options.batch_size, allow_none=True),
        precision=check_precision(options.precision, model.backend),
        threads=check_threads(options.threads),
    )


def train(
    model: Layer,
    loss: Loss,
    optimizer: Optimizer,
    xs: Any,
    ys: Any,
    options: FitOptions,
    *,
    validation: tuple[Any, Any] | None = None,
    hooks: StepHooks = PLAIN,
    show_progress: bool = True,
) -> History:
    """The epochs of training on prepared data ([`prepare_data`][]): the loop every ``fit`` runs.

    For each epoch: [`run_epoch`][] over fresh [`minibatches`][], the
    validation data evaluated, then the callbacks, the History and the
    progress report ([`finish_epoch`][]). Ctrl-C returns the epochs done.
    ``options.seed`` may be a seed or a generator with ``permutation``.
    """
    hooks = with_precision(model, options.precision, hooks, optimizer)
    callbacks = list(options.callbacks)
    metrics = make_metrics(options.metrics, binary=isinstance(loss, BCE_LOSSES))
    n = xs.shape[0]
    bs = n if options.batch_size is None else min(int(options.batch_size), n)
    rng = options.seed if hasattr(options.seed, "permutation") else host_rng(options.seed)
    history = History()
    report = make_progress(options.progress and show_progress, options.verbose, options.epochs, -(-n // bs))
    notify(callbacks, "on_train_begin", model, optimizer)
    model.train()
    try:
        with blas_threads(_thread_count(model, options.threads, bs)):
            for epoch in range(options.epochs):
                report.start_epoch(epoch)
                batches = minibatches(xs, ys, bs, shuffle=options.shuffle, rng=rng)
                logs = run_epoch(
                    model,
                    loss,
                    optimizer,
                    batches,
                    metrics,
                    report,
                    epoch=epoch,
                    stop_on_nan=options.stop_on_nan,
                    hooks=hooks,
                )
                if validation is not None:
                    x_val, y_val = validation
                    logs.update(
                        evaluate(
                            model, loss, x_val, y_val, options.metrics, batch_size=options.batch_size, prefix="val_"
                        )
                    )
                if finish_epoch(epoch, logs, history, callbacks, report):
                    break
    except KeyboardInterrupt:
        interrupted(history)
    finally:
        report.close()
    notify(callbacks, "on_train_end", history)
    return history


def _thread_count(model: Layer, threads: Any, batch_size: int) -> int | None:
    """The BLAS threads of a ``fit`` ([`nu_xp.training.threads`][nu_xp.training.threads]); None on a GPU or for
    ``threads=None`` (the libraries' own)."""
    be = model.backend
    if threads is None or not be.ops.is_host(be.device):
        return None
    return auto_threads(model.num_parameters(), batch_size) if threads == "auto" else int(threads)


def fit_local(model: Layer, loss: Loss, optimizer: Optimizer, x: Any, y: Any, options: FitOptions) -> History:
    """The single-process ``fit``: arguments checked, data prepared once, then [`train`][]."""
    options = check_fit_arguments(model, loss, optimizer, options)
    xs, ys = prepare_data(model, loss, x, y, "training", check_finite=options.check_inputs)
    val = prepare_validation(model, loss, options.validation_data, check_finite=options.check_inputs)
    return train(model, loss, optimizer, xs, ys, options, validation=val)


def notify(callbacks: Sequence[Any], hook: str, *args: Any) -> None:
    """Call ``hook`` (``"on_train_begin"``, ``"on_train_end"``) on every callback that has it."""
    for cb in callbacks:
        if hasattr(cb, hook):
            getattr(cb, hook)(*args)


def finish_epoch(epoch: int, logs: dict[str, float], history: History, callbacks: Sequence[Any], report: Any) -> bool:
    """The callbacks see (and may extend) the logs, the History records them, the reporter shows them.

    Returns True when a callback asks to stop (``on_epoch_end`` returned True or set ``stop_training``).
    """
    stop = False
    for cb in callbacks:
        if hasattr(cb, "on_epoch_end"):
            stop = bool(cb.on_epoch_end(epoch, logs)) or getattr(cb, "stop_training", False) or stop
    history.append(epoch, logs)
    report.end_epoch(epoch, logs)
    history.stopped_early = stop
    return stop


def interrupted(history: History) -> None:
    """Ctrl-C: mark the History and say how far training got (``fit`` returns it)."""
    history.interrupted = True
    warnings.warn(
        f"training interrupted after {len(history)} complete epoch(s); returning the history so far",
        RuntimeWarning,
        stacklevel=3,
    )


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
    """Loss and metrics of ``model`` on ``(x, y)`` in eval mode: ``{"loss": ..., "accuracy": ...}``.

    Runs under [`nu_xp.no_grad`][nu_xp.grad_mode.no_grad]: neither the model nor the loss keeps anything, so a
    forward whose backward is pending is not disturbed.
    """
    check_model_and_loss(model, loss, "evaluate(model, loss, x, y)")
    xs, ys = prepare_data(model, loss, x, y, "evaluation")
    pred = model.predict(xs, batch_size=batch_size)
    with no_grad():
        logs = {f"{prefix}loss": float(loss.forward(pred, ys))}
    if metrics:
        shown = _shown(loss, pred)
        for m in make_metrics(metrics, binary=isinstance(loss, BCE_LOSSES)):
            m.reset()
            m.update(shown, ys)
            logs[f"{prefix}{m.name}"] = m.result()
    return logs
