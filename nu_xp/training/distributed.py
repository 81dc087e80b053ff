"""``fit(..., distributed=True)``: data-parallel training over MPI ranks (see :mod:`nu_xp.distributed`).

Every rank passes the same ``x``, ``y`` and ``seed``, so every rank draws the
same permutation and sees the same global minibatches. Each global minibatch
of ``m`` rows is cut into ``world_size`` contiguous shares (sizes as even as
possible); rank ``r`` runs forward and backward on its share ``m_r`` only,
and the gradients are combined with weights ``m_r / m``::

    g = Σ_r (m_r / m) · g_r        (g_r: the mean-loss gradient over rank r's share)

which is exactly the mean-loss gradient of the whole minibatch for losses
that average over samples, so an uneven last batch is exact too. The loss of
the epoch travels in the same allreduce; streamed metrics are merged once
per epoch; the parameters are re-broadcast from rank 0 at every epoch end, so
no rank can drift through a different reduction order. The ``History`` is the
same on every rank; only rank 0 shows a progress bar (and ``nu_xp.save``
writes only on rank 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import distributed as dist
from ..initializers import host_rng
from ..layers import Layer
from ..losses import Loss
from ..metrics import Metric, make_metric
from ..optim import Optimizer
from .history import History
from .loop import (
    NonFiniteLossError,
    _check_fit_arguments,
    _shown,
    evaluate,
    finish_epoch,
    interrupted,
    minibatches,
    notify,
    prepare_data,
    prepare_validation,
)
from .progress import make_progress

__all__ = ["fit_distributed", "share"]


def share(m: int, size: int, rank: int) -> tuple[int, int]:
    """Rank ``rank``'s rows ``[lo, hi)`` of a minibatch of ``m`` rows cut into ``size`` near-equal parts."""
    base, extra = divmod(m, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def fit_distributed(model: Layer, loss: Loss, optimizer: Optimizer, x: Any, y: Any, **options: Any) -> History:
    """The data-parallel ``fit``; ``options`` are :func:`nu_xp.fit`'s keywords. Any failure ends every rank."""
    dist.init()
    try:
        return _fit(model, loss, optimizer, x, y, **options)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        if dist.is_active():
            dist.report_failure_and_abort(exc)
        raise


def _fit(
    model: Layer,
    loss: Loss,
    optimizer: Optimizer,
    x: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int | None,
    shuffle: bool,
    seed: int | None,
    validation_data: tuple[Any, Any] | None,
    metrics: Sequence[str | Callable | Metric],
    progress: bool,
    callbacks: Iterable[Any],
    check_inputs: bool,
    stop_on_nan: bool,
    verbose: int | str,
) -> History:
    _check_fit_arguments(model, loss, optimizer, epochs, batch_size)
    if seed is None and dist.is_active():
        raise ValueError("distributed fit needs seed=: every rank must draw the same minibatches")
    callbacks = list(callbacks)
    xs, ys = prepare_data(model, loss, x, y, "training", check_finite=check_inputs)
    val = prepare_validation(model, loss, validation_data, check_finite=check_inputs)
    arguments = {"epochs": epochs, "batch_size": batch_size, "shuffle": shuffle, "seed": seed}
    dist.check_same_everywhere({"x": xs, "y": ys, "model": model, "arguments": arguments})
    dist.broadcast_parameters(model)
    me, size = dist.rank(), dist.world_size()
    train_metrics = [make_metric(m) for m in metrics]
    n = xs.shape[0]
    bs = n if batch_size is None else min(int(batch_size), n)
    rng = host_rng(seed)
    history = History()
    report = make_progress(progress and me == 0, verbose, epochs, -(-n // bs))
    params = optimizer.params
    notify(callbacks, "on_train_begin", model, optimizer)
    model.train()
    try:
        for epoch in range(epochs):
            for m in train_metrics:
                m.reset()
            report.start_epoch(epoch)
            total, first_bad = 0.0, None
            for step, (xb, yb) in enumerate(minibatches(xs, ys, bs, shuffle=shuffle, rng=rng)):
                rows = xb.shape[0]
                lo, hi = share(rows, size, me)
                optimizer.zero_grad()
                value = 0.0
                if hi > lo:
                    pred = model.forward(xb[lo:hi, ...])
                    value = float(loss.forward(pred, yb[lo:hi, ...])) * (hi - lo)
                    model.backward_into(loss.backward(), False)
                    if train_metrics:
                        shown = _shown(loss, pred)
                        for m in train_metrics:
                            m.update(shown, yb[lo:hi, ...])
                (summed,) = dist.allreduce_gradients(params, weight=(hi - lo) / rows, extra=[value])
                optimizer.step()
                total += summed
                if first_bad is None and not math.isfinite(summed):
                    first_bad = step
                report.step(total, (step + 1) * bs)
            logs = {"loss": total / n}
            if stop_on_nan and first_bad is not None:
                raise NonFiniteLossError(
                    f"the training loss became {logs['loss']} at epoch {epoch}, step {first_bad} (both counted "
                    "from 0); lower the learning rate or check the data (stop_on_nan=False trains on regardless)"
                )
            for m in train_metrics:
                m.merge(dist.allgather(m.state()))
                logs[m.name] = m.result()
            dist.broadcast_parameters(model)  # every rank holds rank 0's bits from here on
            if val is not None:
                logs.update(evaluate(model, loss, val[0], val[1], metrics, batch_size=batch_size, prefix="val_"))
            if finish_epoch(epoch, logs, history, callbacks, report):
                break
    except KeyboardInterrupt:
        interrupted(history)
    finally:
        report.close()
    notify(callbacks, "on_train_end", history)
    return history
