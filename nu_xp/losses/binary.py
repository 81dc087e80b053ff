"""Binary classification losses: ``BCELoss`` (on probabilities), ``BCEWithLogitsLoss`` (on logits)."""

from __future__ import annotations

import math
from typing import Any

from ..backends import ops_of
from ..functional import clamped_log, sigmoid
from .base import Loss, scalar

__all__ = ["BCELoss", "BCEWithLogitsLoss"]


class BCELoss(Loss):
    """Binary cross-entropy on probabilities p ∈ [0, 1], as ``torch.nn.BCELoss``:

    ``L = mean(-(t · log p + (1 - t) · log(1 - p)))`` with each log clamped at
    -100 (so p = 0 or 1 gives a finite loss, never a divide warning), and
    ``dL/dp = (p - t) / max(p (1 - p), 1e-12) / n``.

    Predictions or targets outside [0, 1] raise ``ValueError`` (as PyTorch's); for raw scores use
    :class:`BCEWithLogitsLoss`, which is also more accurate.
    """

    def forward(self, pred: Any, target: Any) -> Any:
        ops, p, t = self._prepare(pred, target)
        if not ops.all((p >= 0.0) & (p <= 1.0)):
            raise ValueError(
                "BCELoss: pred must hold probabilities in [0, 1] (e.g. the output of Sigmoid); "
                "for raw scores use BCEWithLogitsLoss"
            )
        if not ops.all((t >= 0.0) & (t <= 1.0)):
            raise ValueError("BCELoss: target must hold values in [0, 1] (labels 0/1 or probabilities)")
        log_p = clamped_log(ops, p)
        log_q = clamped_log(ops, 1.0 - p)
        n = math.prod(p.shape)
        self._cache = (p, t, n)
        return scalar(ops, -ops.sum(t * log_p + (1.0 - t) * log_q) / n)

    def _grad(self) -> Any:
        p, t, n = self._cache
        return (p - t) / (ops_of(p).clamp_min(p * (1.0 - p), 1e-12) * n)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits x (sigmoid fused in), as ``torch.nn.BCEWithLogitsLoss``:

    ``L = mean(max(x, 0) - x · t + log(1 + exp(-|x|)))``;  ``dL/dx = (σ(x) - t) / n``.
    """

    def forward(self, pred: Any, target: Any) -> Any:
        ops, x, t = self._prepare(pred, target)
        xp = ops.xp
        n = math.prod(x.shape)
        self._cache = (sigmoid(ops, x), t, n)
        return scalar(ops, ops.sum(ops.clamp_min(x, 0.0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))) / n)

    def _grad(self) -> Any:
        sig, t, n = self._cache
        return (sig - t) * (1.0 / n)
