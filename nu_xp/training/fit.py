"""``nu_xp.fit``: its keywords become one [`FitOptions`][nu_xp.training.loop.FitOptions], run by
[`loop`][nu_xp.training.loop] (or [`data_parallel`][nu_xp.training.data_parallel])."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..layers import Layer
from ..losses import Loss
from ..metrics import Metric
from ..optim import Optimizer
from ..validation import check_number
from .batches import is_batch_source
from .data_parallel import fit_distributed
from .history import History
from .loop import FitOptions, fit_local

__all__ = ["fit"]


def fit(
    model: Layer,
    loss: Loss,
    optimizer: Optimizer,
    x: Any,
    y: Any = None,
    *,
    epochs: int,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    validation_data: tuple[Any, Any] | None = None,
    metrics: Sequence[str | Callable | Metric] = (),
    progress: bool = True,
    callbacks: Iterable[Any] = (),
    check_inputs: bool = True,
    stop_on_nan: bool = True,
    distributed: bool = False,
    validation_split: float = 0.0,
    verbose: int | str = "auto",
    precision: str = "32",
    threads: int | str | None = "auto",
    clip_grad_norm: float | None = None,
    accumulate_grad_batches: int = 1,
    initial_epoch: int = 0,
    compile: bool | str = "auto",
) -> History:
    """Train ``model`` on ``(x, y)`` and return the per-epoch [`History`][nu_xp.training.history.History].

    Parameters
    ----------
    model : Layer
        Usually a [`Sequential`][nu_xp.layers.containers.Sequential].
    loss : Loss
        E.g. ``CrossEntropyLoss()`` (y: integer labels) or ``MSELoss()``.
    optimizer : nu_xp.optim.Optimizer
        Built on ``model.parameters()``.
    x, y : arrays or array-likes, or a DataLoader (then no y)
        Moved to the model's backend; real x is cast to the model's dtype, as
        is y except integer labels for ``CrossEntropyLoss`` and ``NLLLoss``. A
        1-D y for any other loss is treated as one column, shape (N, 1). ``x``
        may instead be a [`DataLoader`][nu_xp.data.loader.DataLoader] (its
        batches checked and moved on its background thread: data larger than
        memory streams from disk) or any iterable of ``(x, y)`` batches; then
        ``batch_size``, ``shuffle`` and ``seed`` are the loader's.
    epochs : int
        Number of passes over the data.
    batch_size : int or None
        Minibatch size; None: the whole set in one batch.
    shuffle : bool, default True
        A new sample order each epoch: epoch ``e``'s from ``numpy.random.default_rng([seed, e])``
        (the seed and the epoch only, so a resumed run sees the same orders).
    seed : int or None
        Seed of the shuffling; None: a seed drawn from the global generator (``nu_xp.manual_seed``).
    validation_data : (x_val, y_val), DataLoader or iterable of batches, optional
        Evaluated in eval mode after every epoch (``val_loss``, ``val_<metric>``).
    validation_split : float in [0, 1), default 0
        Keras' rule: the LAST fraction of ``x`` and ``y`` (taken before any
        shuffling) is held out as ``validation_data``.
    metrics : sequence of str or callable
        ``"accuracy"``, ``"binary_accuracy"``, ``"mse"``, ``"mae"``, ``"r2"``,
        or ``f(y_true, y_pred) -> float`` (see [`nu_xp.metrics`][nu_xp.metrics]). With
        ``BCEWithLogitsLoss`` they see probabilities σ(pred).
    progress : bool, default True
        Report while training (``False``: nothing, whatever ``verbose`` says).
    verbose : "auto", 0, 1 or 2, default "auto"
        As Keras: ``1`` a tqdm bar with the running loss, ``2`` one line per
        epoch, ``0`` nothing; ``"auto"`` the bar in a terminal or a Jupyter
        notebook and one line per epoch elsewhere (a log, CI, captured output).
    callbacks : iterable
        Objects with optional ``on_train_begin(model, optimizer)``,
        ``on_epoch_end(epoch, logs) -> bool`` (True stops) and
        ``on_train_end(history)``: [`EarlyStopping`][nu_xp.training.callbacks.EarlyStopping], the schedules of
        `nu_xp.optim`, or your own.
    check_inputs : bool, default True
        Refuse NaN or Inf in ``x``, ``y`` and the validation data (checked once,
        before training).
    stop_on_nan : bool, default True
        Stop with [`NonFiniteLossError`][nu_xp.errors.NonFiniteLossError] (a ``ValueError``) naming the
        epoch and step when the training loss becomes NaN or infinite, as
        Keras' ``TerminateOnNaN``.
    distributed : bool, default False
        Data-parallel training over the MPI ranks (``mpiexec -n N python
        script.py``): every rank passes the same ``x``, ``y`` and ``seed``,
        ``batch_size`` is the global batch, each rank computes its share of
        every minibatch and the gradients are averaged (weighted by the
        shares); the result equals one process's up to reduction order. See
        [`nu_xp.training.data_parallel`][nu_xp.training.data_parallel]. With one process it is plain ``fit``.
    precision : {"32", "bf16-mixed", "16-mixed"}, default "32"
        Lightning's names. ``"bf16-mixed"``/``"16-mixed"``: forward and backward
        in bfloat16/float16, float32 master weights (the optimizer and the
        validation see float32); ``"16-mixed"`` scales the loss dynamically and
        skips a step whose gradients overflow, as ``torch.amp.GradScaler``. On
        torch (CPU and CUDA, both modes) and cupy (``"16-mixed"``); elsewhere a
        ``ValueError`` naming those backends. A step that overflows at the smallest
        loss scale stops training with ``NonFiniteLossError`` (the model stays
        float32). See [`nu_xp.training.precision`][nu_xp.training.precision].
    threads : "auto", int or None, default "auto"
        BLAS threads while training, on the CPU. ``"auto"`` decides from the
        work, never from a timing: one thread when ``batch_size × parameters``
        is small (small products, where a second thread buys little and a busy
        machine costs much), the libraries' own count otherwise, or what
        ``nu_xp.set_num_threads`` set; so seeded runs reproduce bit for bit.
        ``n`` uses ``n`` threads; ``None`` leaves the libraries alone. Restored
        when ``fit`` returns. See [`nu_xp.training.threads`][nu_xp.training.threads].
    clip_grad_norm : float, optional
        Before every step, rescale the gradients so that their total 2-norm is
        at most this ([`clip_grad_norm_`][nu_xp.optim.clip.clip_grad_norm_]).
    accumulate_grad_batches : int, default 1
        Lightning's name: the gradients of this many minibatches make one step,
        equal (for mean losses) to a step on their union.
    initial_epoch : int, default 0
        Keras' name: start at this epoch (0-based), for a run resumed from a
        checkpoint (``load_checkpoint``): the epochs ``initial_epoch`` to
        ``epochs - 1`` train, with the orders they would have had.
    compile : "auto", True or False, default "auto"
        Compile each training step ([`nu_xp.compile_step`][nu_xp.training.compiled.compile_step]:
        forward, loss, backward and update as one ``jax.jit`` program per batch shape). ``"auto"``
        compiles on JAX (with ``precision="32"``, no ``distributed``) and runs eagerly elsewhere;
        ``True`` raises ``ValueError`` where it cannot compile; ``False`` never compiles. The results are
        the eager step's (float32 rtol 1e-5); integer labels are checked once on the whole data.

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
    options = FitOptions.from_keywords(locals())
    if x is None or (y is None and not is_batch_source(x, y)):
        raise TypeError(
            f"fit: {'x' if x is None else 'y'} is None; fit needs inputs x and targets y, or a DataLoader "
            "(nu_xp.data.DataLoader) in place of both"
        )
    if validation_split:
        if is_batch_source(x, y):
            raise ValueError("validation_split needs arrays x and y; with a DataLoader pass validation_data")
        x, y, options.validation_data = _split_off(x, y, validation_split, validation_data)
    if distributed:
        return fit_distributed(model, loss, optimizer, x, y, options)
    return fit_local(model, loss, optimizer, x, y, options)


def _split_off(x: Any, y: Any, fraction: float, validation_data: Any) -> tuple[Any, Any, tuple[Any, Any]]:
    """``(x_train, y_train, (x_val, y_val))``: the last ``fraction`` of the samples, before any shuffling (Keras)."""
    fraction = check_number("validation_split", fraction, 0.0, 1.0)
    if fraction >= 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {fraction}")
    if validation_data is not None:
        raise ValueError("pass validation_data or validation_split, not both")
    xs = x if hasattr(x, "shape") else np.asarray(x)
    ys = y if hasattr(y, "shape") else np.asarray(y)
    if len(xs.shape) == 0 or len(ys.shape) == 0:
        raise ValueError("x and y need one row per sample (arrays of at least one dimension)")
    n = xs.shape[0]
    if ys.shape[0] != n:
        raise ValueError(f"x has {n} samples but y has {ys.shape[0]}; they must be the same")
    split_at = int(n * (1.0 - fraction))
    if not 0 < split_at < n:
        raise ValueError(
            f"validation_split={fraction} of {n} samples leaves {split_at} for training and {n - split_at} for "
            "validation; both need at least one"
        )
    return xs[:split_at, ...], ys[:split_at, ...], (xs[split_at:, ...], ys[split_at:, ...])
