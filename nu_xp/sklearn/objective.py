"""What the estimators minimize: scikit-learn's batch loss with sample weights, and its L2 penalty, once each.

Per minibatch of ``n`` samples with weights ``s_i`` (all 1 without ``sample_weight``)::

    L = Σ_i s_i ℓ_i / Σ_i s_i  +  α/2 · Σ_layers ||W||² / Σ_i s_i
    dL/dz_i = s_i dℓ_i/dz_i / Σ s        dL/dW += α W / Σ s   (weights, not biases)

with ``ℓ_i`` the loss of sample ``i`` summed over its outputs: binary
cross-entropy on logits (a logistic output per label), softmax
cross-entropy, half the squared error per output ``(z - y)² / (2 n_outputs)``
(whose gradient scikit-learn takes as ``z - y``), or the Poisson deviance on
the log-scale output. Both solvers (``solvers.py``) use [`BatchLoss`][] and
[`l2_penalty`][]; the sample weights are an argument of the loss, never
hidden in the targets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import losses
from ..backends import ops_of
from ..layers import Parameter

__all__ = ["BatchLoss", "HalfSquaredError", "PoissonDeviance", "l2_penalty"]


class BatchLoss(losses.Loss):
    """``L = Σ_i s_i ℓ_i / Σ_i s_i``: ``forward(pred, target, sample_weight=None)``, ``backward() = dL/dz``.

    Parameters
    ----------
    make : callable
        ``make(reduction)`` gives the per-element loss ``ℓ`` (a nu_xp loss); ``"sum"`` serves the
        unweighted batch (one reduction), ``"none"`` the weighted one.
    """

    def __init__(self, make: Callable[[str], losses.Loss]) -> None:
        super().__init__()
        self.summed = make("sum")
        self.each = make("none")

    def forward(self, pred: Any, target: Any, sample_weight: Any = None) -> Any:
        """The batch loss; ``sample_weight`` ``(n,)`` on the predictions' backend, or None (every weight 1)."""
        if sample_weight is None:
            n = pred.shape[0]
            self.save_for_backward(None, n, None)
            return self.summed.forward(pred, target) / n
        ops = ops_of(pred)
        values = self.each.forward(pred, target)  # ℓ per element: (n,) or (n, n_outputs)
        shape = tuple(values.shape)
        if values.ndim > 1:
            values = ops.sum(values, axis=1)
        total = ops.sum(sample_weight)
        self.save_for_backward(sample_weight, total, shape)
        return ops.sum(values * sample_weight) / total

    def backward(self, grad: Any = None) -> Any:
        """``dL/dz``: each sample's gradient times ``s_i / Σ s``."""
        weights, total, shape = self.saved_tensors()
        if weights is None:
            return self.summed.backward(1.0 / total)
        xp = ops_of(weights).xp
        share = weights / total
        if len(shape) > 1:
            share = xp.broadcast_to(xp.reshape(share, (-1, 1)), shape)
        return self.each.backward(share)


def l2_penalty(weights: list[Parameter], alpha: float, weight_sum: Any) -> Any:
    """``α/2 · Σ ||W||² / Σs`` (an array on the weights' backend, or 0.0 without ``alpha``); adds ``α W / Σs``
    to every ``W.grad`` (call it after the backward that filled them)."""
    if not alpha:
        return 0.0
    squares: Any = 0.0
    for w in weights:
        squares = squares + ops_of(w.data).sum(w.data * w.data)
        w.grad = w.grad + (alpha / weight_sum) * w.data
    return 0.5 * alpha * squares / weight_sum


class PoissonDeviance(losses.Loss):
    """scikit-learn's Poisson loss on the log-scale output ``z`` (prediction ``exp(z)``), per element:

    ``ℓ = y log y - y z - y + exp(z)`` (``y log y = 0`` at ``y = 0``);  ``dℓ/dz = exp(z) - y``.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}
        As for every loss.
    """

    def forward(self, pred: Any, target: Any) -> Any:
        ops, z, y = self._prepare(pred, target)
        xp = ops.xp
        mu = xp.exp(z)
        ylogy = xp.where(y > 0.0, y * xp.log(xp.where(y > 0.0, y, xp.ones_like(y))), xp.zeros_like(y))
        return self._reduce(ops, ylogy - y * z - y + mu, math.prod(pred.shape), mu - y)

    def _grad(self, kept: Any, scale: Any) -> Any:
        return kept * scale


class HalfSquaredError(losses.MSELoss):
    """Per element ``(z - y)² / (2 n_outputs)`` with gradient ``z - y`` (scikit-learn's squared loss and delta).

    Parameters
    ----------
    n_outputs : int
        The outputs per sample (the value is divided by it, the gradient is not: scikit-learn's rule).
    reduction : {"mean", "sum", "none"}
        As for every loss.
    """

    def __init__(self, n_outputs: int, reduction: str = "sum") -> None:
        super().__init__(reduction=reduction)
        self.n_outputs = n_outputs

    def forward(self, pred: Any, target: Any) -> Any:
        return super().forward(pred, target) / (2.0 * self.n_outputs)

    def _grad(self, kept: Any, scale: Any) -> Any:
        return kept * scale
