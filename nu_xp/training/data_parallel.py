"""``fit(..., distributed=True)``: data-parallel training over MPI ranks (see [`nu_xp.distributed`][nu_xp.distributed]).

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

from collections.abc import Sequence
from typing import Any

from .. import distributed as dist
from ..data import EpochOrder
from ..layers import Layer
from ..losses import Loss
from ..metrics import Metric
from ..optim import Optimizer
from .batches import ArrayBatches, batches_of
from .history import History
from .hooks import StepHooks
from .loop import FitOptions, check_fit_arguments, train, validation_batches

__all__ = ["DataParallel", "fit_distributed", "share"]


def share(m: int, size: int, rank: int) -> tuple[int, int]:
    """Rank ``rank``'s rows ``[lo, hi)`` of a minibatch of ``m`` rows cut into ``size`` near-equal parts."""
    base, extra = divmod(m, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class DataParallel(StepHooks):
    """The hooks of data-parallel training: each rank runs its share; gradients and losses are summed over ranks.

    Parameters
    ----------
    params : list of Parameter
        The model's parameters, whose gradients are averaged over the ranks.
    """

    def __init__(self, params: list[Any]) -> None:
        self.params, self.rank, self.size = params, dist.rank(), dist.world_size()

    def shard(self, xb: Any, yb: Any) -> tuple[Any, Any]:
        """Rank ``r``'s contiguous share of the minibatch ([`share`][])."""
        lo, hi = share(xb.shape[0], self.size, self.rank)
        return xb[lo:hi, ...], yb[lo:hi, ...]

    def after_backward(self, batch_loss: Any, rows: int, batch_rows: int) -> Any:
        """``g = Σ_r (m_r / m) g_r`` in one allreduce, the ranks' summed losses riding along (a float)."""
        (summed,) = dist.allreduce_gradients(self.params, weight=rows / batch_rows, extra=[float(batch_loss)])
        return summed

    def end_epoch(self, model: Layer, metrics: Sequence[Metric]) -> None:
        """Merge the streamed metrics of every rank; every rank takes rank 0's parameters (no drift)."""
        for m in metrics:
            m.merge(dist.allgather(m.state()))
        dist.broadcast_parameters(model)


def fit_distributed(model: Layer, loss: Loss, optimizer: Optimizer, x: Any, y: Any, options: FitOptions) -> History:
    """The data-parallel ``fit``: the one loop of [`train`][nu_xp.training.loop.train] with [`DataParallel`][].

    Any failure ends every rank (its message reaches the output first), never a hang.
    """
    dist.init()
    try:
        options = check_fit_arguments(model, loss, optimizer, options)
        if options.seed is None and dist.is_active():
            raise ValueError("distributed fit needs seed=: every rank must draw the same minibatches")
        data = batches_of(model, loss, x, y, "training", batch_size=options.batch_size, shuffle=options.shuffle,
                          order=EpochOrder(options.seed), check_finite=options.check_inputs)  # fmt: skip
        val = validation_batches(model, loss, options)
        arguments = {"epochs": options.epochs, "batch_size": options.batch_size, "shuffle": options.shuffle}
        same = {"model": model, "arguments": {**arguments, "seed": options.seed}}
        if isinstance(data, ArrayBatches):  # a loader's batches cannot be compared up front: its seed must agree
            same.update({"x": data.xs, "y": data.ys})
        dist.check_same_everywhere(same)
        dist.broadcast_parameters(model)
        hooks = DataParallel(optimizer.params)
        return train(model, loss, optimizer, data, options, validation=val, hooks=hooks, show_progress=hooks.rank == 0)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        if dist.is_active():
            dist.report_failure_and_abort(exc)
        raise
