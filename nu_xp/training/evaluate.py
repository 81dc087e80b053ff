"""``evaluate``: the loss and metrics of a model on data, in eval mode, keeping nothing for backward."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..backends import ops_of
from ..data import EpochOrder
from ..functional import sigmoid
from ..grad_mode import no_grad
from ..layers import Layer
from ..losses import BCELoss, BCEWithLogitsLoss, Loss
from ..metrics import Metric, make_metrics
from .batches import ArrayBatches, LoaderBatches, batches_of

__all__ = ["check_model_and_loss", "evaluate"]


def _shown(loss: Loss, pred: Any) -> Any:
    """What metrics see: probabilities σ(pred) for ``BCEWithLogitsLoss``, else ``pred``."""
    return sigmoid(ops_of(pred), pred) if isinstance(loss, BCEWithLogitsLoss) else pred


def evaluate(
    model: Layer,
    loss: Loss,
    x: Any,
    y: Any = None,
    metrics: Sequence[str | Callable | Metric] = (),
    *,
    batch_size: int | None = None,
    prefix: str = "",
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``(x, y)`` in eval mode: ``{"loss": ..., "accuracy": ...}``.

    ``x, y`` are arrays, or ``x`` is a ``DataLoader`` (or any iterable of
    ``(x, y)`` batches) and ``y`` is omitted. For arrays the loss is the
    loss over all of ``x``, however it is batched; for batches it is the mean
    of the batches' losses weighted by their sizes (the same for losses that
    average over samples). Runs under [`nu_xp.no_grad`][nu_xp.grad_mode.no_grad]: neither the model nor the
    loss keeps anything, so a forward whose backward is pending is not
    disturbed; the model's train/eval mode is restored.
    """
    check_model_and_loss(model, loss, "evaluate(model, loss, x, y)")
    data = x if isinstance(x, (ArrayBatches, LoaderBatches)) else batches_of(
        model, loss, x, y, "evaluation", batch_size=batch_size, shuffle=False, order=EpochOrder(0), check_finite=True
    )  # fmt: skip
    binary = isinstance(loss, (BCELoss, BCEWithLogitsLoss))
    meters = [] if not metrics else make_metrics(metrics, binary=binary)
    for m in meters:
        m.reset()
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            if isinstance(data, ArrayBatches):  # the whole set: predict in batches, one loss over all of it
                pred = model.predict(data.xs, batch_size=batch_size)
                value = float(loss.forward(pred, data.ys))
                for m in meters:
                    m.update(_shown(loss, pred), data.ys)
            else:  # streamed: a loss per batch, weighted by its size; metrics streamed too
                total: Any = 0.0
                seen = 0
                for xb, yb in data.epoch(0):
                    pred = model(xb)
                    total = total + loss.forward(pred, yb) * xb.shape[0]
                    seen += xb.shape[0]
                    for m in meters:
                        m.update(_shown(loss, pred), yb)
                if not seen:
                    raise ValueError("evaluate: the data gave no batches")
                value = float(total) / seen
    finally:
        model.train(was_training)
    logs = {f"{prefix}loss": value}
    logs.update({f"{prefix}{m.name}": m.result() for m in meters})
    return logs


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
