"""The training loop of nu_xp, in named steps.

One epoch, for each group of ``accumulate_grad_batches`` minibatches
``(x_b, y_b)`` (one, by default) of epoch ``e``'s order::

    optimizer.zero_grad()
    for (x_b, y_b) in group:                 # the gradients of the group add up
        pred = model(x_b)
        value = loss.forward(pred, y_b)
        model.backward(loss.backward(), input_grad=False)
    hooks.after_backward(...)                # nothing, unless a loop needs it (an allreduce)
    optimizer.step()                         # through the wrappers fit put around it (clipping, loss scaling)
    callbacks: on_train_batch_end

The steps are separate functions (one update: [`train_group`][nu_xp.training.step.train_group] and
[`train_step`][nu_xp.training.step.train_step] in ``step.py``; [`run_epoch`][], [`train`][] here).
There is ONE loop: ``fit`` runs [`train`][] with the plain [`StepHooks`][]; the data-parallel ``fit``
([`data_parallel`][nu_xp.training.data_parallel]) runs it with hooks that
shard each minibatch over the MPI ranks and average the gradients; mixed
precision ([`precision`][nu_xp.training.precision]) with hooks that compute
in low precision; the scikit-learn estimators ([`nu_xp.sklearn`][nu_xp.sklearn])
run [`run_epoch`][] with a step that adds the L2 penalty. [`FitOptions`][]
holds ``fit``'s options; the data comes as batches ([`batches`][nu_xp.training.batches]).
Training loss and metrics are streamed over the epoch's batches (in training
mode, as Keras does); validation loss and metrics are computed at the end of
the epoch in eval mode. Everything is recorded in a
[`History`][nu_xp.training.history.History].
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..backends import ops_of
from ..data import EpochOrder
from ..errors import NonFiniteLossError
from ..functional import sigmoid
from ..layers import Layer
from ..losses import BCELoss, BCEWithLogitsLoss, Loss
from ..metrics import Metric, make_metrics
from ..optim import Optimizer, unwrap
from ..optim.clip import ClipGradNorm
from ..validation import check_number, check_positive_int
from .batches import ArrayBatches, LoaderBatches, batches_of
from .compiled import COMPILABLE, CompiledStep, check_labels
from .evaluate import check_model_and_loss, evaluate
from .history import History
from .hooks import PLAIN, StepHooks
from .precision import check_precision, with_precision
from .progress import Progress, make_progress
from .step import train_group
from .threads import auto_threads, blas_threads, check_threads

__all__ = [
    "BCE_LOSSES",
    "FitOptions",
    "NonFiniteLossError",
    "check_fit_arguments",
    "finish_epoch",
    "fit_local",
    "run_epoch",
    "train",
]


#: losses of independent binary outputs: their "accuracy" is binary accuracy (as Keras)
BCE_LOSSES = (BCELoss, BCEWithLogitsLoss)


# ---------------------------------------------------------------------------- one epoch


def _shown(loss: Loss, pred: Any) -> Any:
    """What metrics see: probabilities σ(pred) for ``BCEWithLogitsLoss``, else ``pred``."""
    return sigmoid(ops_of(pred), pred) if isinstance(loss, BCEWithLogitsLoss) else pred


def _groups(batches: Iterable[tuple[Any, Any]], size: int) -> Iterable[list[tuple[Any, Any]]]:
    group: list[tuple[Any, Any]] = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def run_epoch(
    model: Layer,
    loss: Loss,
    optimizer: Any,
    batches: Iterable[tuple[Any, Any]],
    metrics: Sequence[Metric] = (),
    progress: Progress | None = None,
    *,
    epoch: int = 0,
    stop_on_nan: bool = True,
    hooks: StepHooks = PLAIN,
    accumulate: int = 1,
    callbacks: Sequence[Any] = (),
    step: Callable[..., tuple[Any, list[tuple[Any, Any]]]] | None = None,
) -> dict[str, float]:
    """Train over ``batches`` once; return ``{"loss": mean loss over samples, <metric>: ...}``.

    The one epoch loop of nu_xp: ``fit``, ``fit(distributed=True)`` and the
    scikit-learn estimators all run it, each with its own ``hooks``. Every
    ``accumulate`` batches make one step ([`train_group`][nu_xp.training.step.train_group]); after each step
    the callbacks with an ``on_train_batch_end(step, logs)`` hear of it
    (``logs``: ``{"epoch", "size"}``, nothing read from the device). With
    ``stop_on_nan``, a NaN or infinite epoch loss raises
    [`NonFiniteLossError`][nu_xp.errors.NonFiniteLossError] naming ``epoch`` and the first bad step (the
    values are checked once per epoch, so a GPU is not synchronized per step).
    ``step(model, loss, optimizer, group, hooks)`` makes each update (default
    [`train_group`][nu_xp.training.step.train_group]; a compiled
    step in ``fit(compile=...)``).
    """
    step = step or train_group
    for m in metrics:
        m.reset()
    after_step = [cb for cb in callbacks if hasattr(cb, "on_train_batch_end")]
    total: Any = 0.0
    seen = 0
    sums: list[Any] = []
    for index, group in enumerate(_groups(batches, accumulate)):
        group_loss, outputs = step(model, loss, optimizer, group, hooks)
        rows = sum(xb.shape[0] for xb, _ in group)
        total = total + group_loss
        seen += rows
        if stop_on_nan:
            sums.append(group_loss)
        if metrics:
            for pred, ys in outputs:
                shown = _shown(loss, pred)
                for m in metrics:
                    m.update(shown, ys)
        for cb in after_step:
            cb.on_train_batch_end(index, {"epoch": epoch, "size": rows})
        if progress is not None:
            progress.step(total, seen)
    if not seen:
        raise ValueError(f"epoch {epoch} had no batches to train on")
    hooks.end_epoch(model, metrics)
    logs = {"loss": float(total) / max(seen, 1)}
    if stop_on_nan and not math.isfinite(logs["loss"]):
        bad = next((i for i, v in enumerate(sums) if not math.isfinite(float(v))), len(sums) - 1)
        raise NonFiniteLossError(
            f"the training loss became {logs['loss']} at epoch {epoch}, step {bad} (both counted from 0); "
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
    clip_grad_norm : float or None
        Clip the gradients' global norm to this before every step.
    accumulate_grad_batches : int, default 1
        Minibatches whose gradients make one step.
    initial_epoch : int, default 0
        The epoch to start at (a resumed run): epochs ``initial_epoch … epochs - 1`` are trained.
    compile : "auto", True or False, default "auto"
        Compile each step on JAX ([`nu_xp.training.compiled`][nu_xp.training.compiled]).
    """

    epochs: int
    batch_size: int | None = None
    shuffle: bool = True
    seed: Any = None
    validation_data: Any = None
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
    clip_grad_norm: float | None = None
    accumulate_grad_batches: int = 1
    initial_epoch: int = 0
    compile: bool | str = "auto"

    @classmethod
    def from_keywords(cls, values: dict[str, Any]) -> FitOptions:
        """The options among ``values`` (a function's ``locals()``), every other name ignored."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def check_fit_arguments(model: Any, loss: Any, optimizer: Any, options: FitOptions) -> FitOptions:
    """``options`` checked (a copy, ``precision`` and ``threads`` in their plain form); ``TypeError``/``ValueError``
    for a model, loss, optimizer, size or option that ``fit`` cannot use."""
    check_model_and_loss(model, loss, "fit(model, loss, optimizer, x, y)")
    if not isinstance(unwrap(optimizer), Optimizer):
        raise TypeError(f"optimizer must be a nu_xp.optim optimizer, got {type(optimizer).__name__}")
    mine = {id(p) for p in model.parameters()}
    if mine and not any(id(p) in mine for p in unwrap(optimizer).params):
        raise ValueError(
            "the optimizer holds none of this model's parameters, so training would change nothing; "
            "build it from this model: optimizer = nu_xp.optim.Adam(model.parameters())"
        )
    clip = options.clip_grad_norm
    if clip is not None:
        clip = check_number("clip_grad_norm", clip, 0.0, open_low=True)
    initial = options.initial_epoch
    if isinstance(initial, bool) or not isinstance(initial, int) or initial < 0:
        raise ValueError(f"initial_epoch must be a non-negative integer, got {initial!r}")
    epochs = check_positive_int("epochs", options.epochs)
    if initial >= epochs:
        raise ValueError(f"initial_epoch={initial} leaves nothing to train with epochs={epochs} (the last epoch is "
                         f"epochs - 1); a resumed run passes the total number of epochs")  # fmt: skip
    return dataclasses.replace(
        options,
        epochs=epochs,
        batch_size=check_positive_int("batch_size", options.batch_size, allow_none=True),
        precision=check_precision(options.precision, model.backend),
        threads=check_threads(options.threads),
        clip_grad_norm=clip,
        accumulate_grad_batches=check_positive_int("accumulate_grad_batches", options.accumulate_grad_batches),
        compile=_check_compile(model, options),
    )


def _check_compile(model: Layer, options: FitOptions) -> bool:
    """``compile`` resolved: whether this ``fit`` compiles its steps (``ValueError`` for ``True`` where it cannot)."""
    value = options.compile
    if value not in ("auto", True, False) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        raise ValueError(f"compile must be 'auto', True or False, got {value!r}")
    why = None
    if model.backend.name not in COMPILABLE:
        why = (
            f"training steps compile on {', '.join(map(repr, COMPILABLE))} only, the model is on {model.backend.name!r}"
        )
    elif options.distributed or options.precision not in ("32", None):
        why = "compiled steps run without distributed=True and with precision='32'"
    if why is not None and value is True:
        raise ValueError(f"fit(compile=True): {why}; pass compile='auto' or False")
    return why is None and value is not False


def _thread_count(model: Layer, threads: Any, batch_size: int) -> int | None:
    """The BLAS threads of a ``fit`` ([`nu_xp.training.threads`][nu_xp.training.threads]); None on a GPU or for
    ``threads=None`` (the libraries' own)."""
    be = model.backend
    if threads is None or not be.ops.is_host(be.device):
        return None
    return auto_threads(model.num_parameters(), batch_size) if threads == "auto" else int(threads)


def train(
    model: Layer,
    loss: Loss,
    optimizer: Any,
    data: ArrayBatches | LoaderBatches,
    options: FitOptions,
    *,
    validation: ArrayBatches | LoaderBatches | None = None,
    hooks: StepHooks = PLAIN,
    show_progress: bool = True,
) -> History:
    """The epochs of training on prepared batches ([`batches_of`][nu_xp.training.batches.batches_of]): the loop
    every ``fit`` runs.

    For each epoch from ``options.initial_epoch``: [`run_epoch`][] over that
    epoch's batches, the validation data evaluated, then the callbacks, the
    History and the progress report ([`finish_epoch`][]). Around the loop:
    the BLAS thread count ([`blas_threads`][nu_xp.training.threads.blas_threads]), the optimizer's wrappers
    (gradient clipping; float16's loss scale, in the mixed-precision hooks),
    and the model's train/eval mode as it was found, restored at the end.
    Ctrl-C returns the epochs done.
    """
    stepper = optimizer if options.clip_grad_norm is None else ClipGradNorm(optimizer, options.clip_grad_norm)
    hooks = with_precision(model, options.precision, hooks, stepper)
    step = _step_function(model, loss, stepper, hooks, options.compile is True)
    callbacks = list(options.callbacks)
    metrics = make_metrics(options.metrics, binary=isinstance(loss, BCE_LOSSES))
    history = History()
    steps = data.steps
    accumulate = options.accumulate_grad_batches
    report = make_progress(options.progress and show_progress, options.verbose, options.epochs, steps or 0)
    batch_size = getattr(data, "batch_size", None) or options.batch_size or 1
    was_training = model.training
    _check_schedules(callbacks, optimizer)
    notify(callbacks, "set_callbacks", callbacks)
    notify(callbacks, "on_train_begin", model, optimizer)
    model.train()
    try:
        with blas_threads(_thread_count(model, options.threads, batch_size)):
            for epoch in range(options.initial_epoch, options.epochs):
                report.start_epoch(epoch)
                notify(callbacks, "on_epoch_begin", epoch, {})
                logs = run_epoch(
                    model,
                    loss,
                    stepper,
                    data.epoch(epoch),
                    metrics,
                    report,
                    epoch=epoch,
                    stop_on_nan=options.stop_on_nan,
                    hooks=hooks,
                    accumulate=accumulate,
                    callbacks=callbacks,
                    step=step,
                )
                if validation is not None:
                    logs.update(evaluate(model, loss, validation, metrics=options.metrics, prefix="val_"))
                    model.train()
                if finish_epoch(epoch, logs, history, callbacks, report):
                    break
    except KeyboardInterrupt:
        interrupted(history)
    finally:
        report.close()
        model.train(was_training)
    notify(callbacks, "on_train_end", history)
    return history


def _step_function(model: Layer, loss: Loss, optimizer: Any, hooks: StepHooks, compile: bool) -> Any:
    """The update ``run_epoch`` makes per group: [`train_group`][nu_xp.training.step.train_group], or a compiled
    step for single batches."""
    if not compile:
        return train_group
    compiled = CompiledStep(model, loss, optimizer, hooks)

    def step(model: Layer, loss: Loss, optimizer: Any, group: Sequence[tuple[Any, Any]], hooks: StepHooks) -> Any:
        if len(group) != 1:  # accumulated groups step eagerly
            return train_group(model, loss, optimizer, group, hooks)
        ((xb, yb),) = group
        total, pred = compiled.run(xb, yb)
        return total, [(pred, yb)]

    step.compiled = compiled  # type: ignore[attr-defined]
    return step


def _check_schedules(callbacks: Sequence[Any], optimizer: Any) -> None:
    """``ValueError`` for a schedule among the callbacks that was made on another optimizer than ``fit``'s."""
    mine = unwrap(optimizer)
    for cb in callbacks:
        schedule = getattr(cb, "scheduler", cb)
        theirs = getattr(schedule, "optimizer", None)
        if theirs is not None and hasattr(schedule, "step") and unwrap(theirs) is not mine:
            raise ValueError(
                f"the callback {type(cb).__name__} steps a schedule made on another optimizer than the one fit "
                "trains with (another model's?); make the schedule on fit's optimizer"
            )


def fit_local(model: Layer, loss: Loss, optimizer: Optimizer, x: Any, y: Any, options: FitOptions) -> History:
    """The single-process ``fit``: arguments checked, data prepared once, then [`train`][]."""
    options = check_fit_arguments(model, loss, optimizer, options)
    order = EpochOrder(options.seed)
    data = batches_of(model, loss, x, y, "training", batch_size=options.batch_size, shuffle=options.shuffle,
                      order=order, check_finite=options.check_inputs)  # fmt: skip
    val = validation_batches(model, loss, options)
    if options.compile and options.check_inputs:
        check_labels(model, loss, x, y)  # a compiled step cannot look at its labels: they are checked here, once
    return train(model, loss, optimizer, data, options, validation=val)


def validation_batches(model: Layer, loss: Loss, options: FitOptions) -> ArrayBatches | LoaderBatches | None:
    """``options.validation_data`` (a pair of arrays, a ``DataLoader`` or an iterable of batches) as batches."""
    data = options.validation_data
    if data is None:
        return None
    if hasattr(data, "shape") or (isinstance(data, (tuple, list)) and not _is_batch_list(data)):
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError("validation_data must be a pair (x_val, y_val), a DataLoader or a list of (x, y) batches")
        x_val, y_val = data
    else:
        x_val, y_val = data, None
    return batches_of(model, loss, x_val, y_val, "validation", batch_size=options.batch_size, shuffle=False,
                      order=EpochOrder(0), check_finite=options.check_inputs)  # fmt: skip


def _is_batch_list(data: Any) -> bool:
    """A list of ``(x, y)`` batches (each a pair whose first part is an array), not a pair ``(x_val, y_val)``."""
    return bool(data) and all(isinstance(b, (tuple, list)) and len(b) == 2 and hasattr(b[0], "shape") for b in data)


def notify(callbacks: Sequence[Any], hook: str, *args: Any) -> None:
    """Call ``hook`` (``"on_train_begin"``, ``"on_epoch_begin"``, ``"on_train_end"``) on every callback that has it."""
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
