"""One update of the parameters from one group of minibatches: the step every training loop takes.

[`train_group`][] is the step (``zero_grad``, forward, loss and backward of each minibatch, the hooks,
``optimizer.step()``); [`train_step`][] the same for one minibatch. The epoch loop
([`nu_xp.training.loop`][nu_xp.training.loop]) calls it per group, and a compiled step
([`nu_xp.training.compiled`][nu_xp.training.compiled]) runs exactly this code under the compiler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..layers import Layer
from ..losses import Loss
from ..optim import unwrap
from .hooks import PLAIN, StepHooks

__all__ = ["train_group", "train_step"]


class _RowsTimes:
    """``loss`` whose backward gives ``rows · dL/dpred``: a microbatch's share of the summed loss (accumulation)."""

    def __init__(self, loss: Loss, rows: int) -> None:
        self.loss, self.rows = loss, rows

    def forward(self, pred: Any, target: Any) -> Any:
        return self.loss.forward(pred, target)

    def backward(self, grad: Any = None) -> Any:
        return self.loss.backward() * self.rows


def train_group(
    model: Layer, loss: Loss, optimizer: Any, group: Sequence[tuple[Any, Any]], hooks: StepHooks = PLAIN
) -> tuple[Any, list[tuple[Any, Any]]]:
    """One update from the gradients of every minibatch of ``group``: forward, loss, backward each, then
    ``hooks.after_backward`` and one step.

    With several minibatches and a mean loss, each minibatch's gradient is
    weighted by its rows and the sum divided by the group's rows, so the step
    equals one on the union of the minibatches. Returns ``(the group's summed
    loss, [(pred, targets)…])`` for the rows this process computed
    (``hooks.shard``). The model's first layer is told that nobody needs the
    gradient with respect to the data (``input_grad=False``), which saves a GEMM.
    """
    optimizer.zero_grad()
    weighted = len(group) > 1 and loss.reduction == "mean"
    total: Any = 0.0
    rows = batch_rows = 0
    outputs = []
    for xb, yb in group:
        xs, ys = hooks.shard(xb, yb)
        n = xs.shape[0]
        if n:
            batch_loss, pred = hooks.forward_backward(model, _RowsTimes(loss, n) if weighted else loss, xs, ys)
            total = total + batch_loss
            outputs.append((pred, ys))
        rows += n
        batch_rows += xb.shape[0]
    if weighted and rows:
        for p in unwrap(optimizer).params:
            if p.grad is not None:
                p.grad = p.grad * (1.0 / rows)
    total = hooks.after_backward(total, rows, batch_rows)
    hooks.step(optimizer)
    return total, outputs


def train_step(
    model: Layer, loss: Loss, optimizer: Any, xb: Any, yb: Any, hooks: StepHooks = PLAIN
) -> tuple[Any, Any, Any]:
    """One update on one minibatch ([`train_group`][] of one): ``(its summed loss, pred, targets)``."""
    total, outputs = train_group(model, loss, optimizer, [(xb, yb)], hooks)
    pred, ys = outputs[0] if outputs else (None, None)
    return total, pred, ys
