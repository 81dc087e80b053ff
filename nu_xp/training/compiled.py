"""Compiled training steps: one ``jax.jit`` program for forward, loss, backward and the optimizer's update.

JAX runs every small array operation eagerly, one dispatch each; its speed
comes from compiling a whole function. [`compile_step`][] turns
``(model, loss, optimizer)`` into ``step(x, y) -> loss`` that runs the *same*
Python code as the eager [`train_step`][nu_xp.training.step.train_step] — the
layers' own ``forward``/``backward``, the optimizer's own ``step`` — once per
input shape under ``jax.jit``, as a pure function::

    (parameters, buffers, optimizer state, learning rates, host draws, x, y)
        -> (summed loss, pred, new parameters, new buffers, new optimizer state)

How the objects become a pure function: while JAX traces, every
``Parameter.data``, every buffer (BatchNorm's running statistics), every
array of the optimizer's state, each group's ``lr`` and each step counter is
replaced by the traced input; the eager step runs on them; the new values are
read back out as the outputs; then every object gets its old value back (no
traced value outlives the trace). After each call the model's parameters,
buffers and the optimizer's state hold the new arrays, exactly where the
eager step would have put them, so ``state_dict``, checkpoints and
``predict`` work unchanged between compiled steps.

What is kept off the compiled program, and why:

* **Checks that need a value** (labels in range, indices in range, finite
  inputs): ``bool()`` of a traced array has no answer. Layers and losses skip
  them while tracing ([`Ops.is_traced`][nu_xp.backends.ops.Ops.is_traced]); the
  step checks a NumPy batch on the host before it is moved, and ``fit``
  checks the whole data once.
* **Random masks** (``Dropout``, the dropout between LSTM layers) are drawn
  on the host from each layer's own generator, as in the eager step, so a
  seed gives the same masks compiled or not; the step learns which draws a
  shape needs from one abstract run (``jax.eval_shape``) and passes them in.
* **Step counters** (Adam's ``t``) go in as traced integers and come back as
  Python integers, each one more after the step: the program never bakes a
  count in.
* **Hyper-parameters other than ``lr``** (betas, momentum, weight decay) are
  part of the program: changing one compiles again (``lr`` is an input, so
  schedules never recompile).
* The first step of a fresh optimizer runs eagerly: it creates the state
  (moments, momentum buffers) whose arrays the compiled program then takes.

A program is compiled for each new combination of input shapes and dtypes,
train/eval mode, frozen parameters and fixed hyper-parameters; ``step.compiles``
counts them. ``"auto"`` in [`fit`][nu_xp.training.fit.fit] compiles on JAX
and runs eagerly elsewhere. On CPU the arrays are not donated (XLA's CPU
client cannot reuse them); on a GPU or TPU parameters and state are.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backends import OPS_CLASSES, asarray, to_host
from ..layers import Layer, Parameter
from ..layers import dropout as dropout_module
from ..losses import CrossEntropyLoss, Loss, NLLLoss
from ..optim import unwrap
from .hooks import PLAIN, StepHooks
from .step import train_group

__all__ = ["COMPILABLE", "CompiledStep", "check_labels", "compile_step"]

#: the backends whose steps compile (their ``Ops.compiles``): JAX, through ``jax.jit``
COMPILABLE = tuple(name for name, cls in OPS_CLASSES.items() if cls.compiles)


def compile_step(model: Layer, loss: Loss, optimizer: Any) -> CompiledStep:
    """``step(x, y) -> loss``: one training step (forward, loss, backward, update), compiled with ``jax.jit``.

    The same arithmetic as ``nu_xp.training.train_step(model, loss, optimizer, x, y)`` (float32 rtol 1e-5),
    compiled once per input shape; the model's parameters and the optimizer's state are updated after
    each call. See the module's text for what stays outside the compiled program.

    Parameters
    ----------
    model : Layer
        A model on the ``"jax"`` backend.
    loss : Loss
        Its loss.
    optimizer : nu_xp.optim.Optimizer
        Over the model's parameters (wrappers such as gradient clipping work too).

    Returns
    -------
    CompiledStep
        Call it as ``step(x, y)``: the batch's loss (a 0-d JAX array; ``float()`` waits for it).

    Raises
    ------
    ValueError
        The model is on a backend that cannot compile (the message names those that can).

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> model = nu_xp.Sequential(nu_xp.Linear(4, 8), nu_xp.ReLU(), nu_xp.Linear(8, 1))
    >>> model = model.to(backend="jax")  # doctest: +SKIP
    >>> step = nu_xp.compile_step(model, nu_xp.MSELoss(), nu_xp.optim.Adam(model.parameters()))  # doctest: +SKIP
    >>> for epoch in range(10):  # doctest: +SKIP
    ...     value = step(np.ones((32, 4), np.float32), np.zeros((32, 1), np.float32))
    """
    return CompiledStep(model, loss, optimizer)


class CompiledStep:
    """A training step compiled per input shape (see [`compile_step`][]).

    Parameters
    ----------
    model, loss, optimizer :
        As for [`compile_step`][].
    hooks : StepHooks, optional
        Where the step differs from the plain one ([`nu_xp.training.hooks`][nu_xp.training.hooks]); ``fit``
        passes its own.

    Attributes
    ----------
    compiles : int
        How many programs were traced and compiled so far (one per new input shape, mode or hyper-parameter).
    compile_seconds : float
        The time those compilations took (their first calls).
    """

    def __init__(self, model: Layer, loss: Loss, optimizer: Any, hooks: StepHooks = PLAIN) -> None:
        if not isinstance(model, Layer) or model.is_loss:
            raise TypeError(f"compile_step: model must be a nu_xp Layer, got {type(model).__name__}")
        if model.backend.name not in COMPILABLE:
            raise ValueError(
                f"compile_step: the model is on the {model.backend.name!r} backend; training steps compile on "
                f"{' and '.join(repr(b) for b in COMPILABLE)} only (model.to(backend='jax')), or run eagerly "
                "with nu_xp.training.train_step / fit(compile=False)"
            )
        self.model, self.loss, self.optimizer, self.hooks = model, loss, optimizer, hooks
        self.compiles = 0
        self.compile_seconds = 0.0
        self.classes: int | None = None  # what a class loss's pred had on its class axis, learned while tracing
        # the model's structure, read once (a step made before layers or Parameter objects are replaced
        # does not see the new ones: make a new step then); values (p.data, buffers) are read every call
        self._modules = list(model.modules())  # whose train/eval modes pick the program
        self._params = _unique_parameters(model, unwrap(optimizer))
        self._buffer_slots = [  # (layer, attribute) of every buffer: where its current array is read and set
            (model.layer_at(name.rpartition(".")[0]), name.rpartition(".")[2])
            for name, _ in model.named_buffers(remove_duplicate=False)
        ]
        self._programs: dict[Any, _Program] = {}

    def __call__(self, x: Any, y: Any) -> Any:
        """One step on ``(x, y)``; returns the loss as ``loss(model(x), y)`` gives it (before the update)."""
        total, _ = self.run(x, y)
        return total / x.shape[0] if self.loss.reduction == "mean" else total  # one small dispatch

    # ------------------------------------------------------------------------------------------ one step

    def run(self, x: Any, y: Any) -> tuple[Any, Any]:
        """One step: ``(the batch's summed loss, pred)``, as [`train_step`][nu_xp.training.step.train_step]."""
        model, opt = self.model, unwrap(self.optimizer)
        x, y = self._arrays(x, y)
        if self._fresh(opt):  # the first step creates the optimizer's state: eagerly, once
            total, outputs = train_group(model, self.loss, self.optimizer, [(x, y)], self.hooks)
            return total, outputs[0][0]
        key = self._key(x, y, self._params, opt)
        program = self._programs.get(key)
        if program is None:
            program = self._programs[key] = _Program(self, self._params, self._buffer_slots, x, y)
        return program.call(x, y)

    def _arrays(self, x: Any, y: Any) -> tuple[Any, Any]:
        """``x`` and ``y`` on the model's device; a NumPy batch checked on the host first (finite values)."""
        for name, value in (("x", x), ("y", y)):
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ValueError(f"compile_step: {name} holds NaN or Inf; clean the data first")
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            x = asarray(x, like=self.model)
        elif isinstance(x, np.ndarray):
            x = asarray(x, like=self.model, dtype=x.dtype.name)
        if isinstance(y, np.ndarray):
            if self.classes is not None and y.dtype.kind in "iu":
                _check_range(self.loss, y, self.classes)
            y = asarray(y, like=self.model, dtype=None if y.dtype.kind == "f" else y.dtype.name)
        return x, y

    def _fresh(self, opt: Any) -> bool:
        """Whether some trainable parameter has no optimizer state yet (its first step is still to come)."""
        index = 0
        for group in opt.param_groups:
            for p in group["params"]:
                if p.requires_grad and index not in opt.state:
                    return True
                index += 1
        return False

    def _key(self, x: Any, y: Any, params: list[Parameter], opt: Any) -> Any:
        """What a program is compiled for: shapes, dtypes, modes, frozen flags, fixed hyper-parameters."""
        fixed = tuple(
            tuple(sorted((k, repr(v)) for k, v in g.items() if k not in ("params", "lr"))) for g in opt.param_groups
        )
        modes = tuple(m.training for m in self._modules)
        return (
            tuple(x.shape),
            str(x.dtype),
            tuple(y.shape),
            str(y.dtype),
            modes,
            tuple(p.requires_grad for p in params),
            fixed,
        )


class _Program:
    """One compiled program: the pure function, the host draws it takes, and how to call it."""

    def __init__(
        self, owner: CompiledStep, params: list[Parameter], buffer_slots: list[tuple[Layer, str]], x: Any, y: Any
    ) -> None:
        ops = owner.model.backend.ops
        self.owner, self.params, self.buffer_slots = owner, params, buffer_slots
        self.opt = unwrap(owner.optimizer)
        self.counters: list[tuple[int, str]] = []  # (parameter index, key) of the Python numbers in the state
        self.arrays: list[tuple[int, str]] = []  # (parameter index, key) of the state's arrays
        for index in sorted(self.opt.state):
            for key, value in self.opt.state[index].items():
                (self.counters if isinstance(value, (int, float)) else self.arrays).append((index, key))
        self.bumped: list[bool] = []  # which counters the step advanced (learned while tracing)
        self.counter_inputs: list[Any] = []  # the traced counters, while tracing
        self.draws: list[tuple[Any, tuple[int, ...], float]] = []  # host draws, in the order the forward asks
        inputs = self._inputs(x, y, [])
        with _recording(self.draws):  # an abstract run: which masks (generator, shape, p) one step draws
            ops.abstract_run(self._pure, *inputs)
        self.compiled = ops.compile(self._traced, donate=(0, 1, 2))  # parameters, buffers, optimizer state
        self.ops = ops
        self.first = True

    def _inputs(self, x: Any, y: Any, masks: list[Any]) -> tuple[Any, ...]:
        """The program's inputs; the numbers (step counts, learning rates) as two small host arrays."""
        state = self.opt.state
        return (
            [p.data for p in self.params],
            [getattr(layer, attr) for layer, attr in self.buffer_slots],
            [state[i][k] for i, k in self.arrays],
            # step counts in the parameters' float type: b1**t then stays in it (an int32 t gives float64
            # under JAX's 64-bit mode, which would widen every parameter); exact up to 2**24 steps
            np.array([state[i][k] for i, k in self.counters], dtype=self.params[0].data.dtype),
            np.array([g["lr"] for g in self.opt.param_groups], dtype=self.params[0].data.dtype),
            masks,
            x,
            y,
        )

    def _traced(self, params, buffers, arrays, counters, lrs, masks, x, y):  # type: ignore[no-untyped-def]
        """What ``jax.jit`` traces: the step, its random masks taken from the inputs."""
        with _replaying(masks):
            return self._pure(params, buffers, arrays, counters, lrs, masks, x, y)

    def _pure(self, params, buffers, arrays, counters, lrs, masks, x, y):  # type: ignore[no-untyped-def]
        """The step as a function of its inputs (traced by JAX; runs the eager code on traced values)."""
        owner, opt = self.owner, self.opt
        with _swapped(self, params, buffers, arrays, counters, lrs):
            total, outputs = train_group(owner.model, owner.loss, owner.optimizer, [(x, y)], owner.hooks)
            new_params = [p.data for p in self.params]
            new_buffers = [getattr(layer, attr) for layer, attr in self.buffer_slots]
            new_arrays = [opt.state[i][k] for i, k in self.arrays]
            self.bumped = [opt.state[i][k] is not c for (i, k), c in zip(self.counters, self.counter_inputs)]
        pred = outputs[0][0]
        if isinstance(owner.loss, (CrossEntropyLoss, NLLLoss)) and pred.ndim >= 2:
            owner.classes = int(pred.shape[1])
        return total, pred, new_params, new_buffers, new_arrays

    def call(self, x: Any, y: Any) -> tuple[Any, Any]:
        masks = [
            asarray(dropout_module.dropout_mask(rng, shape, p), like=self.owner.model) for rng, shape, p in self.draws
        ]
        inputs = self._inputs(x, y, masks)
        start = time.perf_counter()
        total, pred, new_params, new_buffers, new_arrays = self.compiled(*inputs)
        if self.first:  # the first call traces and compiles: wait for it, and count it
            self.ops.wait(total)
            self.owner.compile_seconds += time.perf_counter() - start
            self.owner.compiles += 1
            self.first = False
        for p, value in zip(self.params, new_params):
            p.data = value
            p.grad = None  # the gradients lived inside the program
        for (layer, attr), value in zip(self.buffer_slots, new_buffers):
            setattr(layer, attr, value)
        state = self.opt.state
        for (i, k), value in zip(self.arrays, new_arrays):
            state[i][k] = value
        for (i, k), bumped in zip(self.counters, self.bumped):
            if bumped:
                state[i][k] += 1
        return total, pred


# ---------------------------------------------------------------------------------------------- helpers


def check_labels(model: Layer, loss: Loss, x: Any, y: Any) -> None:
    """``ValueError`` for integer labels outside ``[0, classes)`` (or ``ignore_index``), checked once on the host.

    What a class loss checks in every eager step; a compiled step cannot (its labels have no value while it
    is traced), so ``fit(compile=...)`` checks the whole data before training. The number of classes is
    what the model gives for the first sample. Data from a ``DataLoader`` is not checked here.
    """
    if not isinstance(loss, (CrossEntropyLoss, NLLLoss)) or y is None or not hasattr(x, "shape"):
        return
    labels = np.asarray(to_host(y) if not isinstance(y, np.ndarray) else y)
    if labels.dtype.kind not in "iu" or not labels.size:
        return
    was = model.training
    pred = model.predict(x[:1])
    model.train(was)
    if pred.ndim >= 2:
        _check_range(loss, labels, int(pred.shape[1]))


def _check_range(loss: Any, labels: np.ndarray, classes: int) -> None:
    bad = (labels < 0) | (labels >= classes)
    ignore = getattr(loss, "ignore_index", None)
    if ignore is not None:
        bad &= labels != ignore
    if bad.any():
        raise ValueError(
            f"{type(loss).__name__}: class labels must be in [0, {classes}) for {classes} classes (or ignore_index), "
            f"got values from {labels.min()} to {labels.max()}"
        )


def _unique_parameters(model: Layer, opt: Any) -> list[Parameter]:
    """Every Parameter the step may read or change, once each: the model's and the optimizer's."""
    seen: dict[int, Parameter] = {}
    for p in [*model.parameters(), *opt.params]:
        seen.setdefault(id(p), p)
    return list(seen.values())


@contextlib.contextmanager
def _swapped(program: _Program, params, buffers, arrays, counters, lrs) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Put the traced values where the eager step reads them; give every object its own values back after."""
    opt, slots = program.opt, program.buffer_slots
    saved_params = [(p, p.data, p.grad) for p in program.params]
    saved_buffers = [getattr(layer, attr) for layer, attr in slots]
    saved_state = {i: dict(entries) for i, entries in opt.state.items()}
    saved_lrs = [g["lr"] for g in opt.param_groups]
    saved_where = opt.__dict__.get("_where")
    try:
        for p, value in zip(program.params, params):
            p.data, p.grad = value, None
        for (layer, attr), value in zip(slots, buffers):
            setattr(layer, attr, value)
        for (i, k), value in zip(program.arrays, arrays):
            opt.state[i][k] = value
        program.counter_inputs = [counters[j] for j in range(len(program.counters))]
        for (i, k), value in zip(program.counters, program.counter_inputs):
            opt.state[i][k] = value
        for j, g in enumerate(opt.param_groups):
            g["lr"] = lrs[j]
        if params:  # the optimizer's "where are my parameters" check sees the traced ones, not a move
            first = params[0]
            object.__setattr__(opt, "_where", (type(first), first.dtype, None))
        yield
    finally:
        for p, data, grad in saved_params:
            p.data, p.grad = data, grad
        for (layer, attr), value in zip(slots, saved_buffers):
            setattr(layer, attr, value)
        opt.state.clear()
        opt.state.update(saved_state)
        for g, lr in zip(opt.param_groups, saved_lrs):
            g["lr"] = lr
        if saved_where is None:
            opt.__dict__.pop("_where", None)
        else:
            object.__setattr__(opt, "_where", saved_where)


@contextlib.contextmanager
def _recording(draws: list[Any]) -> Iterator[None]:
    """While an abstract step runs: note each host draw ``(generator, shape, p)`` and hand back zeros."""

    def source(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> np.ndarray:
        draws.append((rng, tuple(shape), p))
        return np.zeros(shape)

    with dropout_module.mask_source(source):
        yield


@contextlib.contextmanager
def _replaying(masks: list[Any]) -> Iterator[None]:
    """While the step traces: hand the layers the masks drawn on the host for this call, in order."""
    queue = list(masks)

    def source(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> Any:
        if not queue:
            raise RuntimeError("compile_step: the step asked for more random masks than its abstract run did")
        mask = queue.pop(0)
        if tuple(mask.shape) != tuple(shape):
            raise RuntimeError(f"compile_step: a mask of shape {tuple(shape)} was asked for, {tuple(mask.shape)} drawn")
        return mask

    with dropout_module.mask_source(source):
        yield
