"""Regression losses: ``MSELoss``, ``L1Loss``, ``HuberLoss`` (``d = pred - target``, elementwise)."""

from __future__ import annotations

import math
from typing import Any

from ..backends import ops_of
from ..validation import check_number
from .base import Loss

__all__ = ["HuberLoss", "L1Loss", "MSELoss"]


class MSELoss(Loss):
    """Squared error: ``ℓ = d²``;  ``dℓ/dpred = 2 d``. With the mean: ``L = Σ d² / n``, ``dL/dpred = 2 d / n``.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-element losses are combined: their mean, their sum, or none (the value has their shape).
    """

    def forward(self, pred: Any, target: Any) -> Any:
        ops, pred, target = self._prepare(pred, target)
        diff = pred - target
        return self._reduce(ops, diff * diff, math.prod(pred.shape), diff)

    def _grad(self, kept: Any, scale: Any) -> Any:
        return kept * (2.0 * scale) if isinstance(scale, float) else kept * 2.0 * scale


class L1Loss(Loss):
    """Absolute error: ``ℓ = |d|``;  ``dℓ/dpred = sign(d)`` (0 at d = 0, as PyTorch).

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-element losses are combined: their mean, their sum, or none (the value has their shape).
    """

    def forward(self, pred: Any, target: Any) -> Any:
        ops, pred, target = self._prepare(pred, target)
        diff = pred - target
        return self._reduce(ops, ops.xp.abs(diff), math.prod(pred.shape), diff)

    def _grad(self, kept: Any, scale: Any) -> Any:
        return ops_of(kept).xp.sign(kept) * scale


class HuberLoss(Loss):
    """Huber loss: ``ℓ = d²/2`` where ``|d| < δ``, else ``δ (|d| - δ/2)``;  ``dℓ/dpred = clip(d, -δ, δ)``.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-element losses are combined: their mean, their sum, or none (the value has their shape).
    delta : float, default 1.0
        Where the loss turns from quadratic (``|d| < delta``) to linear.
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = check_number("delta", delta, 0.0, open_low=True)

    def forward(self, pred: Any, target: Any) -> Any:
        ops, pred, target = self._prepare(pred, target)
        diff = pred - target
        a = ops.xp.abs(diff)
        quadratic = 0.5 * diff * diff
        linear = self.delta * (a - 0.5 * self.delta)
        return self._reduce(ops, ops.xp.where(a < self.delta, quadratic, linear), math.prod(pred.shape), diff)

    def _grad(self, kept: Any, scale: Any) -> Any:
        ops = ops_of(kept)
        return ops.clamp_max(ops.clamp_min(kept, -self.delta), self.delta) * scale
