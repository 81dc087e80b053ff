"""Gradient clipping: ``clip_grad_norm_``, ``clip_grad_value_`` (PyTorch's names and results), and
``ClipGradNorm``, an optimizer wrapper that clips before every step (what ``fit(clip_grad_norm=...)`` uses).

For the gradients ``g_i`` of the parameters, the total ``p``-norm and the rescaling::

    ‖g‖ = (Σ_i ‖g_i‖_p^p)^(1/p)        (p = ∞: max_i max|g_i|)
    g_i ← g_i · min(1, max_norm / (‖g‖ + 1e-6))

so a small gradient passes unchanged and a large one keeps its direction at
length ``max_norm``. The factor is computed on the device; nothing is read
back unless ``error_if_nonfinite=True``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..backends import ops_of
from ..layers import Layer, Parameter
from ..validation import check_number
from .optimizer import OptimizerWrapper, unwrap

__all__ = ["ClipGradNorm", "clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Any) -> list[Parameter]:
    if isinstance(parameters, Layer):
        parameters = parameters.parameters()
    elif isinstance(parameters, Parameter):
        parameters = [parameters]
    items = [p[1] if isinstance(p, tuple) and len(p) == 2 else p for p in parameters]
    for p in items:
        if not isinstance(p, Parameter):
            raise TypeError(f"clip_grad_*_ takes Parameters (model.parameters()), got {type(p).__name__}")
    return [p for p in items if p.grad is not None]


def clip_grad_norm_(
    parameters: Iterable[Parameter] | Parameter | Layer,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Any:
    """Rescale the gradients in place so that their total ``norm_type``-norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: returns the total norm before
    clipping (a 0-d array on the gradients' backend; 0.0 when no parameter has
    a gradient); ``error_if_nonfinite=True`` raises ``RuntimeError`` when it
    is NaN or infinite.

    Parameters
    ----------
    parameters : iterable of Parameter, a Parameter, or a Layer
        Whose gradients to clip (those without a gradient are skipped).
    max_norm : float
        The largest total norm (positive).
    norm_type : float, default 2.0
        The ``p`` of the norm (``float("inf")`` for the largest absolute entry).
    error_if_nonfinite : bool, default False
        Raise when the total norm is NaN or infinite.
    """
    max_norm = check_number("max_norm", max_norm, 0.0)
    p_norm = float(norm_type)
    if not (p_norm > 0 or math.isinf(p_norm)) or math.isnan(p_norm):
        raise ValueError(f"norm_type must be a positive number or inf, got {norm_type!r}")
    params = _grads(parameters)
    if not params:
        return 0.0
    ops = ops_of(params[0].grad)
    xp = ops.xp
    if math.isinf(p_norm):
        total = ops.max(xp.stack([ops.max(xp.abs(p.grad)) for p in params]))
    else:
        powered = [ops.sum(xp.abs(p.grad) ** p_norm) if p_norm != 2.0 else ops.sum(p.grad * p.grad) for p in params]
        total = ops.sum(xp.stack(powered)) ** (1.0 / p_norm)
    if error_if_nonfinite and not math.isfinite(float(total)):
        raise RuntimeError(
            f"the total norm of order {p_norm} of the gradients is {float(total)}; clipping would make them "
            "meaningless (set error_if_nonfinite=False to clip anyway)"
        )
    factor = ops.clamp_max(max_norm / (total + 1e-6), 1.0)
    for p in params:
        p.grad = p.grad * ops.astype(factor, p.grad.dtype)
    return total


def clip_grad_value_(parameters: Iterable[Parameter] | Parameter | Layer, clip_value: float) -> None:
    """Clip every gradient entry to ``[-clip_value, clip_value]`` in place (``torch.nn.utils.clip_grad_value_``).

    Parameters
    ----------
    parameters : iterable of Parameter, a Parameter, or a Layer
        Whose gradients to clip.
    clip_value : float
        The largest absolute value of an entry (non-negative).
    """
    value = check_number("clip_value", clip_value, 0.0)
    for p in _grads(parameters):
        ops = ops_of(p.grad)
        p.grad = ops.clamp_max(ops.clamp_min(p.grad, -value), value)


class ClipGradNorm(OptimizerWrapper):
    """Wraps an optimizer: every ``step()`` first clips the gradients' total 2-norm to ``max_norm``.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer (or wrapper) to step after clipping.
    max_norm : float
        The largest total norm.
    """

    def __init__(self, optimizer: Any, max_norm: float) -> None:
        super().__init__(optimizer)
        object.__setattr__(self, "max_norm", check_number("max_norm", max_norm, 0.0, open_low=True))

    def step(self) -> Any:
        clip_grad_norm_(unwrap(self.optimizer).params, self.max_norm)
        return self.optimizer.step()
