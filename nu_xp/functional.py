"""Numerically stable functions shared by layers, losses and ``fit`` (no state, no parameters)."""

from __future__ import annotations

from typing import Any

from .backends import Ops

__all__ = ["clamped_log", "sigmoid"]


def sigmoid(ops: Ops, x: Any) -> Any:
    """σ(x) = 1/(1+e^{-x}) without overflow, as ``exp(min(x, 0)) / (1 + exp(-|x|))``.

    For x ≥ 0 that is 1/(1+e^{-x}); for x < 0 it is e^{x}/(1+e^{x}): neither
    exponent is ever positive, and no per-element branch (``where``) is needed.
    """
    xp = ops.xp
    return xp.exp(ops.clamp_max(x, 0.0)) / (1.0 + xp.exp(-xp.abs(x)))


def clamped_log(ops: Ops, p: Any, floor: float = -100.0) -> Any:
    """``max(log p, floor)`` for p ≥ 0, computed without ever evaluating ``log(0)``."""
    xp = ops.xp
    positive = p > 0.0
    return xp.where(positive, ops.clamp_min(xp.log(xp.where(positive, p, 1.0)), floor), floor)
