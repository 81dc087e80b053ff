"""Binary classification losses: ``BCELoss`` (on probabilities), ``BCEWithLogitsLoss`` (on logits)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends import ops_of
from ..functional import clamped_log
from .base import Loss

__all__ = ["BCELoss", "BCEWithLogitsLoss"]


class BCELoss(Loss):
    """Binary cross-entropy on probabilities p ∈ [0, 1], as ``torch.nn.BCELoss``:

    ``ℓ = -(t · log p + (1 - t) · log(1 - p))`` with each log clamped at -100
    (so p = 0 or 1 gives a finite loss, never a divide warning), and
    ``dℓ/dp = (p - t) / max(p (1 - p), 1e-12)``.

    Predictions or targets outside [0, 1] raise ``ValueError`` (as PyTorch's); for raw scores use
    [`BCEWithLogitsLoss`][], which is also more accurate.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-element losses are combined: their mean, their sum, or none (the value has their shape).
    """

    def forward(self, pred: Any, target: Any) -> Any:
        ops, p, t = self._prepare(pred, target)
        if not ops.is_traced(p) and not ops.all((p >= 0.0) & (p <= 1.0)):  # a compiled step checks its data first
            raise ValueError(
                "BCELoss: pred must hold probabilities in [0, 1] (e.g. the output of Sigmoid); "
                "for raw scores use BCEWithLogitsLoss"
            )
        if not ops.is_traced(t) and not ops.all((t >= 0.0) & (t <= 1.0)):
            raise ValueError("BCELoss: target must hold values in [0, 1] (labels 0/1 or probabilities)")
        elementwise = -(t * clamped_log(ops, p) + (1.0 - t) * clamped_log(ops, 1.0 - p))
        return self._reduce(ops, elementwise, math.prod(p.shape), (p, t))

    def _grad(self, kept: Any, scale: Any) -> Any:
        p, t = kept
        return (p - t) / ops_of(p).clamp_min(p * (1.0 - p), 1e-12) * scale


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits x (sigmoid fused in), as ``torch.nn.BCEWithLogitsLoss``.

    With ``softplus(x) = log(1 + eˣ) = max(x, 0) + log1p(e^{-|x|})`` (never overflows)
    and the positive-class weight ``w⁺`` (``pos_weight``, broadcast along the last axis; 1 by default)::

        ℓ = w⁺ · t · softplus(-x) + (1 - t) · softplus(x)
        dℓ/dx = w⁺ · t · (σ(x) - 1) + (1 - t) · σ(x)          (= σ(x) - t when w⁺ = 1)

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-element losses are combined: their mean, their sum, or none (the value has their shape).
    pos_weight : array, optional
        Weight of the positive term per output (broadcast over the batch), moved to the predictions' backend.
    """

    def __init__(self, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.pos_weight = pos_weight

    def forward(self, pred: Any, target: Any) -> Any:
        ops, x, t = self._prepare(pred, target)
        xp = ops.xp
        e = xp.exp(-xp.abs(x))  # shared by σ and softplus: never overflows
        sig = xp.exp(ops.clamp_max(x, 0.0)) / (1.0 + e)  # functional.sigmoid, with its e⁻ˣ reused
        softplus = ops.clamp_min(x, 0.0) + xp.log1p(e)  # softplus(x); softplus(-x) = that - x
        w = None if self.pos_weight is None else self._pos_weight(x)
        if w is None:
            elementwise = softplus - x * t
        else:
            elementwise = w * t * (softplus - x) + (1.0 - t) * softplus
        return self._reduce(ops, elementwise, math.prod(x.shape), (sig, t, w))

    def _pos_weight(self, x: Any) -> Any:
        """``pos_weight`` on x's backend; it must broadcast to x's shape without changing it (one per class)."""
        w = self._weights(self.pos_weight, x, "pos_weight")
        try:
            fits = np.broadcast_shapes(tuple(w.shape), tuple(x.shape)) == tuple(x.shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"BCEWithLogitsLoss: pos_weight of shape {tuple(w.shape)} does not broadcast to pred's shape "
                f"{tuple(x.shape)}; give one weight per output column, shape ({x.shape[-1]},)"
            )
        return w

    def _grad(self, kept: Any, scale: Any) -> Any:
        sig, t, w = kept
        if w is None:
            return (sig - t) * scale
        return (w * t * (sig - 1.0) + (1.0 - t) * sig) * scale
