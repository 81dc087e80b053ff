"""``Loss``: the base of every loss. A loss is a :class:`~nu_xp.layers.Layer` with two inputs.

``value = loss.forward(pred, target)`` returns a 0-d array; ``grad =
loss.backward()`` returns ``dL/dpred`` of the shape of ``pred`` (passing
``grad``, the gradient of something downstream w.r.t. the loss value, scales
it). Losses have no parameters and are never registered as layers, so a model
file can never name one as part of a model.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..backends import Ops, describe, dtype_kind, dtype_name, ops_of, same_device
from ..layers import Layer

__all__ = ["Loss"]


class Loss(Layer):
    """Base class: ``forward(pred, target) -> value``, ``backward(grad=None) -> dL/dpred``.

    Subclasses implement ``forward`` (keeping what the gradient needs in
    ``self._cache``) and ``_grad()``.
    """

    is_loss: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self._cache: Any = None

    def forward(self, pred: Any, target: Any) -> Any:
        """The loss value for ``pred`` against ``target`` (a 0-d array)."""
        raise NotImplementedError

    def backward(self, grad: Any = None) -> Any:
        """``dL/dpred`` for the last ``forward`` (times ``grad`` when given)."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        dpred = self._grad()
        return dpred if grad is None else dpred * grad

    def clear_cache(self) -> None:
        self._cache = None

    def _grad(self) -> Any:
        raise NotImplementedError

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
        if same_shape and tuple(pred.shape) != tuple(target.shape):
            raise ValueError(
                f"{name}: pred and target must have the same shape, got pred "
                f"{tuple(pred.shape)} and target {tuple(target.shape)} (no broadcasting)"
            )
        if float_target and target.dtype != pred.dtype:
            if dtype_kind(ops.xp, target.dtype) == "c":
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


def scalar(ops: Ops, value: Any) -> Any:
    """The loss value as a 0-d array (numpy turns 0-d results into numpy scalars)."""
    return ops.asarray(value)
