"""Regression losses: ``MSELoss``."""

from __future__ import annotations

import math
from typing import Any

from .base import Loss, scalar

__all__ = ["MSELoss"]


class MSELoss(Loss):
    """Mean squared error: ``L = mean((p - t)²)``;  ``dL/dp = 2 (p - t) / n`` (n = number of elements)."""

    def forward(self, pred: Any, target: Any) -> Any:
        ops, pred, target = self._prepare(pred, target)
        diff = pred - target
        n = math.prod(pred.shape)
        self._cache = (diff, n)
        return scalar(ops, ops.sum(diff * diff) / n)

    def _grad(self) -> Any:
        diff, n = self._cache
        return diff * (2.0 / n)
