"""``Loss``: the base of every loss. A loss is a [`Layer`][nu_xp.layers.base.Layer] with two inputs.

``value = loss.forward(pred, target)``; ``grad = loss.backward()`` returns
``dL/dpred`` of the shape of ``pred``. Every loss takes PyTorch's
``reduction``:

* ``"mean"`` (default): ``L = Σ ℓ / n`` (n: the number of elements, or the
  loss's own normalizer, e.g. the summed class weights of ``CrossEntropyLoss``);
  ``backward()`` needs no argument, and ``backward(grad)`` scales by a scalar;
* ``"sum"``: ``L = Σ ℓ``;
* ``"none"``: ``L = ℓ``, the per-element losses; ``backward(grad)`` takes
  ``dL'/dℓ`` of that shape (``grad`` is required).

Each subclass computes its elementwise loss ``ℓ`` and ``_grad(kept, scale)``,
the derivative ``dℓ/dpred`` times ``scale`` (``1/n``, 1, or ``grad``) from
``kept``, what its forward computed for it. A subclass's ``forward`` ends with
``_reduce``/``_reduce_total``, which keep ``kept`` and the scale for the
backward of that call ([`Layer.save_for_backward`][nu_xp.layers.base.Layer.save_for_backward]:
one node per call, nothing under ``no_grad()``, nothing on the instance), so a
loss used twice before its backwards gives each backward its own values.
Losses have no parameters and are never registered as layers, so a model
file can never name one as part of a model.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..backends import Ops, asarray, describe, dtype_kind, dtype_name, ops_of, same_device
from ..layers import Layer

__all__ = ["Loss"]

REDUCTIONS = ("mean", "sum", "none")


class Loss(Layer):
    """Base class: ``forward(pred, target) -> value``, ``backward(grad=None) -> dL/dpred``.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-element losses are combined: their mean, their sum, or none (the value has their shape).
    """

    is_loss: ClassVar[bool] = True
    #: True when the target may be integer class labels without the class axis (``CrossEntropyLoss``,
    #: ``NLLLoss``): ``fit`` keeps such labels integer and 1-D; for the other losses a 1-D target is one column
    takes_labels: ClassVar[bool] = False

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, pred: Any, target: Any) -> Any:
        """The loss value for ``pred`` against ``target`` (a 0-d array unless ``reduction="none"``)."""
        raise NotImplementedError

    def backward(self, grad: Any = None) -> Any:
        """``dL/dpred`` for the last ``forward``; ``grad`` is dL'/dL (required with ``reduction="none"``)."""
        kept, scale, value_shape, ops = self.saved_tensors()
        if isinstance(grad, np.generic) and not value_shape:  # a numpy scalar: a number, on every backend
            grad = grad.item()
        if grad is not None and not isinstance(grad, (int, float)):
            self._check_grad_place(grad, ops)
        if self.reduction == "none":
            if grad is None or tuple(getattr(grad, "shape", ())) != value_shape:
                raise ValueError(
                    f"{type(self).__name__}(reduction='none').backward needs grad = dL/d(value) of the value's "
                    f"shape {value_shape}, got {None if grad is None else tuple(getattr(grad, 'shape', ()))}"
                )
            return self._grad(kept, self._expand(grad))
        if grad is None:
            return self._grad(kept, scale)
        if tuple(getattr(grad, "shape", ())) != ():
            raise ValueError(
                f"{type(self).__name__}(reduction={self.reduction!r}) has a scalar value, so backward(grad) takes "
                f"dL'/dL as a scalar; got grad of shape {tuple(grad.shape)} (for per-element gradients use "
                "reduction='none')"
            )
        return self._grad(kept, scale) * grad

    def _check_grad_place(self, grad: Any, ops: Ops) -> None:
        """``TypeError`` unless ``grad`` is an array of the backend the forward computed on."""
        try:
            grad_ops = ops_of(grad)
        except TypeError:
            grad_ops = None
        if grad_ops is not ops:
            raise TypeError(
                f"{type(self).__name__}.backward: grad is {describe(grad)}, but the forward computed on {ops.name}; "
                "pass dL'/dL on the same backend (nu_xp.asarray(grad, like=value))"
            )

    def _expand(self, grad: Any) -> Any:
        """``grad`` of the value's shape, broadcastable against ``pred`` (losses that reduce an axis override)."""
        return grad

    def _reduce(self, ops: Ops, elementwise: Any, count: Any, kept: Any) -> Any:
        """The value for the reduction; keeps ``kept`` (what ``_grad`` reads) and the scale ``backward`` applies."""
        if self.reduction == "none":
            self.save_for_backward(kept, None, tuple(elementwise.shape), ops)
            return elementwise
        return self._reduce_total(ops, ops.sum(elementwise), count, kept)

    def _reduce_total(self, ops: Ops, total: Any, count: Any, kept: Any) -> Any:
        """The value from the sum of the elementwise losses (for "mean" and "sum" only); keeps ``kept`` and the
        scale ``dL/dℓ``: ``1/count`` for the mean, 1 for the sum."""
        reduction = self.reduction
        if reduction == "mean" and type(count) is int and count:  # the common case first: no other test
            scale: Any = 1.0 / count
            value = ops.asarray(total * scale)
        elif reduction == "sum":
            scale = 1.0
            value = ops.asarray(total)
        elif isinstance(count, (int, float)):
            scale = 1.0 / max(count, 1)
            value = ops.asarray(total * scale) if count else ops.asarray(total * float("nan"))
        else:
            # an array normalizer (summed weights): where it is 0 the value is NaN and the gradient 0, as PyTorch's,
            # and no divide warning
            xp = ops.xp
            safe = xp.where(count > 0, count, xp.ones_like(count))
            scale = xp.where(count > 0, 1.0 / safe, xp.zeros_like(count))
            value = total * xp.where(count > 0, 1.0 / safe, xp.full_like(count, float("nan")))
        self.save_for_backward(kept, scale, (), ops)
        return value

    def _grad(self, kept: Any, scale: Any) -> Any:
        """``dℓ/dpred · scale`` from ``kept``, what this loss's forward passed to ``_reduce``."""
        raise NotImplementedError

    def _weights(self, value: Any, like: Any, name: str) -> Any:
        """A user's ``weight``/``pos_weight`` (any array or list) on ``like``'s backend, device and dtype."""
        if value is None:
            return None
        cached = getattr(self, f"_{name}_on", None)
        if (
            cached is not None
            and type(cached) is type(like)
            and same_device(ops_of(cached).device_of(cached), ops_of(like).device_of(like))
            and cached.dtype == like.dtype
        ):
            return cached
        moved = asarray(value, like=like, dtype=like.dtype)
        setattr(self, f"_{name}_on", moved)
        return moved

    def _prepare(self, pred: Any, target: Any, *, same_shape: bool = True, float_target: bool = True) -> tuple:
        """``(ops, pred, target)`` on one backend and device, pred floating, shapes checked."""
        ops = ops_of(pred)
        name = type(self).__name__
        if dtype_kind(ops.xp, pred.dtype) != "f":
            raise TypeError(f"{name}: pred must be a floating array, got dtype {dtype_name(pred.dtype)}")
        if type(target) is not type(pred) or (
            not ops.single_device and not same_device(ops.device_of(target), ops.device_of(pred))
        ):
            self._check_same_place(pred, target)
        if same_shape and pred.shape != target.shape and tuple(pred.shape) != tuple(target.shape):
            raise ValueError(
                f"{name}: pred and target must have the same shape, got pred "
                f"{tuple(pred.shape)} and target {tuple(target.shape)} (no broadcasting)"
            )
        if float_target and target.dtype != pred.dtype:
            if dtype_kind(ops.xp, target.dtype) not in ("f", "i"):
                raise TypeError(f"{name}: target must be real, got dtype {dtype_name(target.dtype)}")
            target = ops.astype(target, pred.dtype)
        return ops, pred, target

    def _check_same_place(self, pred: Any, target: Any) -> None:
        """Raise ``TypeError`` unless ``target`` is an array on pred's backend and device."""
        name = type(self).__name__
        try:
            target_ops = ops_of(target)
        except TypeError:
            raise TypeError(
                f"{name}: target must be an array, got {type(target).__name__}; "
                "convert it with nu_xp.asarray(target, like=pred)"
            ) from None
        pred_ops = ops_of(pred)
        if target_ops is not pred_ops or not same_device(pred_ops.device_of(target), pred_ops.device_of(pred)):
            raise TypeError(
                f"{name}: target is {describe(target)} but pred is {describe(pred)}; "
                "use nu_xp.asarray(target, like=pred)"
            )
