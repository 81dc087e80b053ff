"""The places where a training loop may differ from the plain one: ``StepHooks`` and its defaults.

``train_step`` (``loop.py``) calls them in this order for every minibatch::

    xs, ys = hooks.shard(xb, yb)                          # this process's rows
    batch_loss, pred = hooks.forward_backward(model, loss, xs, ys)
    batch_loss = hooks.after_backward(batch_loss, ...)    # e.g. the allreduce of the gradients
    hooks.step(optimizer)

and ``hooks.end_epoch`` after each epoch. The data-parallel loop (``data_parallel.py``)
and mixed precision (``precision.py``) are subclasses; ``WrappingHooks`` lets one
wrap another (mixed precision wraps the plain or the data-parallel hooks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..layers import Layer
from ..metrics import Metric
from ..optim import Optimizer

__all__ = ["PLAIN", "StepHooks", "WrappingHooks"]


class StepHooks:
    """Where a training loop may differ from the plain one, inside the one update of [`train_step`][].

    Each method's default does the plain thing; a loop overrides what it
    needs, as scikit-learn's ``_fit_stochastic`` and tinygrad's optimizers
    keep one place per concern:

    * [`shard`][] — the rows of the minibatch this process computes
      (data-parallel training: its share);
    * [`after_backward`][] — between the backward and the optimizer step,
      with the gradients in place: average them over processes, add a
      penalty's gradient; returns the batch's summed loss as the loop records it;
    * [`end_epoch`][] — after the epoch's last step (merge metrics, re-sync parameters).
    """

    def shard(self, xb: Any, yb: Any) -> tuple[Any, Any]:
        """The rows of ``(xb, yb)`` that this process runs forward and backward (default: all)."""
        return xb, yb

    def after_backward(self, batch_loss: Any, rows: int, batch_rows: int) -> Any:
        """Called with the gradients of this process's ``rows`` in place, before the step.

        ``batch_loss`` is the loss summed over those rows (an array, or 0.0
        when there were none); ``batch_rows`` the rows of the whole
        minibatch. Returns the loss summed over the whole minibatch.
        """
        return batch_loss

    def end_epoch(self, model: Layer, metrics: Sequence[Metric]) -> None:
        """After the last step of an epoch, before its logs are read."""

    def forward_backward(self, model: Layer, loss: Any, xs: Any, ys: Any) -> tuple[Any, Any]:
        """Forward, loss and backward of this process's rows: ``(their summed loss, pred)``.

        Mixed precision ([`MixedPrecision`][nu_xp.training.precision.MixedPrecision]) runs them in low precision.
        """
        pred = model(xs)
        batch_loss = loss.forward(pred, ys) * xs.shape[0]
        model.backward_into(loss.backward(), input_grad=False)
        return batch_loss, pred

    def step(self, optimizer: Optimizer) -> None:
        """The optimizer's step (mixed precision in float16 skips a step whose gradients overflowed)."""
        optimizer.step()


#: the plain loop's hooks (every default)
PLAIN = StepHooks()


class WrappingHooks(StepHooks):
    """Hooks around other hooks: every step hook goes to ``inner`` unless a subclass overrides it
    (mixed precision wraps the plain or the data-parallel hooks).

    Parameters
    ----------
    inner : StepHooks
        The hooks that do what this class does not override.
    """

    def __init__(self, inner: StepHooks) -> None:
        self.inner = inner

    def shard(self, xb: Any, yb: Any) -> tuple[Any, Any]:
        return self.inner.shard(xb, yb)

    def after_backward(self, batch_loss: Any, rows: int, batch_rows: int) -> Any:
        return self.inner.after_backward(batch_loss, rows, batch_rows)

    def end_epoch(self, model: Layer, metrics: Sequence[Metric]) -> None:
        self.inner.end_epoch(model, metrics)

    def forward_backward(self, model: Layer, loss: Any, xs: Any, ys: Any) -> tuple[Any, Any]:
        return self.inner.forward_backward(model, loss, xs, ys)

    def step(self, optimizer: Optimizer) -> None:
        self.inner.step(optimizer)
