"""Layers that only rearrange or select: ``Flatten``, ``Unflatten``, ``TimeStep``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends import ops_of
from .base import Layer, check_grad
from .registry import register_layer

__all__ = ["Flatten", "TimeStep", "Unflatten"]


@register_layer
class Flatten(Layer):
    """Merge the dimensions ``start_dim`` … ``end_dim`` into one, as ``torch.nn.Flatten``.

    ``(N, C, L)`` → ``(N, C·L)`` with the defaults (``start_dim=1, end_dim=-1``).
    Backward reshapes ``g`` back to the input's shape: ``dL/dx = reshape(g, x.shape)``.

    Parameters
    ----------
    start_dim : int, default 1
        The first axis merged (negative counts from the end).
    end_dim : int, default -1
        The last axis merged.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"Flatten {name} must be an integer, got {value!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        return {}

    def forward(self, x: Any) -> Any:
        ops = ops_of(x)
        shape = tuple(x.shape)
        ndim = max(len(shape), 1)
        start, end = self.start_dim % ndim, self.end_dim % ndim
        if not (-ndim <= self.start_dim < ndim and -ndim <= self.end_dim < ndim) or start > end:
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) does not fit an input of shape {shape}"
            )
        out_shape = (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])
        self.save_for_backward(shape, out_shape, type(x))
        return ops.xp.reshape(x, out_shape)

    def backward(self, grad: Any) -> Any:
        in_shape, out_shape, array_type = self.saved_tensors()
        grad = check_grad(self, grad, out_shape, array_type)
        return ops_of(grad).xp.reshape(grad, in_shape)


def _int(name: str, value: Any, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer} {name} must be an integer, got {value!r}")
    return int(value)


@register_layer
class Unflatten(Layer):
    """Split axis ``dim`` into ``unflattened_size``, as ``torch.nn.Unflatten`` (the inverse of ``Flatten``).

    ``Unflatten(1, (16, 7, 7))`` takes ``(N, 784)`` to ``(N, 16, 7, 7)``: the first step of a decoder
    after its dense layer. One size may be ``-1`` (inferred). ``dL/dx = reshape(g, x.shape)``.

    Parameters
    ----------
    dim : int
        The axis split (negative counts from the end).
    unflattened_size : tuple of int
        The sizes it becomes; their product must be its size.

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> nu_xp.Unflatten(1, (2, 3))(np.zeros((4, 6))).shape
    (4, 2, 3)
    """

    def __init__(self, dim: int, unflattened_size: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        self.parameter_shapes({"dim": dim, "unflattened_size": unflattened_size})
        self.dim, self.unflattened_size = int(dim), tuple(int(v) for v in unflattened_size)

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """No parameters; ``dim`` an integer, ``unflattened_size`` positive sizes (one may be -1)."""
        _int("dim", config.get("dim"), "Unflatten")
        sizes = config.get("unflattened_size")
        if not isinstance(sizes, (tuple, list)) or not sizes:
            raise TypeError(f"Unflatten unflattened_size must be a non-empty tuple of ints, got {sizes!r}")
        values = [_int("unflattened_size", v, "Unflatten") for v in sizes]
        if any(v < 1 and v != -1 for v in values) or values.count(-1) > 1:
            raise ValueError(f"Unflatten unflattened_size must be positive (one may be -1), got {sizes!r}")
        return {}

    def get_config(self) -> dict[str, Any]:
        return {"dim": self.dim, "unflattened_size": list(self.unflattened_size)}

    def forward(self, x: Any) -> Any:
        shape = tuple(x.shape)
        if not -len(shape) <= self.dim < len(shape):
            raise ValueError(f"Unflatten(dim={self.dim}) does not fit an input of shape {shape}")
        axis = self.dim % len(shape)
        sizes = list(self.unflattened_size)
        known = math.prod(v for v in sizes if v != -1)
        if -1 in sizes and known and shape[axis] % known == 0:
            sizes[sizes.index(-1)] = shape[axis] // known
        if math.prod(sizes) != shape[axis] or -1 in sizes:
            raise ValueError(
                f"Unflatten(dim={self.dim}, unflattened_size={self.unflattened_size}) cannot split axis {axis} of "
                f"size {shape[axis]} (input shape {shape})"
            )
        out_shape = (*shape[:axis], *sizes, *shape[axis + 1 :])
        self.save_for_backward(shape, out_shape, type(x))
        return ops_of(x).xp.reshape(x, out_shape)

    def backward(self, grad: Any) -> Any:
        in_shape, out_shape, array_type = self.saved_tensors()
        grad = check_grad(self, grad, out_shape, array_type)
        return ops_of(grad).xp.reshape(grad, in_shape)


@register_layer
class TimeStep(Layer):
    """One time step of a sequence: ``(N, T, H)`` → ``(N, H)`` (``batch_first=True``) or ``(T, N, H)`` → ``(N, H)``.

    The layer a sequence classifier puts after its recurrent layer:
    ``Sequential(Embedding(V, E), LSTM(E, H, batch_first=True), Select(0), TimeStep(batch_first=True),
    Linear(H, classes))``. Forward ``y = x[:, index]`` (or ``x[index]``); backward puts ``g`` at that step
    and zeros elsewhere: ``dL/dx[:, t] = g`` if ``t = index``, else 0.

    Parameters
    ----------
    index : int, default -1
        The step passed on (negative counts from the end: -1 is the last).
    batch_first : bool, default False
        The layout of the input, as the recurrent layer before it (PyTorch's default: time first).

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> nu_xp.TimeStep(batch_first=True)(np.arange(12.0).reshape(2, 3, 2))
    array([[ 4.,  5.],
           [10., 11.]])
    """

    def __init__(self, index: int = -1, batch_first: bool = False) -> None:
        super().__init__()
        self.parameter_shapes({"index": index, "batch_first": batch_first})
        self.index, self.batch_first = int(index), bool(batch_first)

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """No parameters; ``index`` an integer, ``batch_first`` a flag."""
        _int("index", config.get("index", -1), "TimeStep")
        flag = config.get("batch_first", False)
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"TimeStep batch_first must be True or False, got {flag!r}")
        return {}

    def forward(self, x: Any) -> Any:
        shape = tuple(x.shape)
        axis = 1 if self.batch_first else 0
        if len(shape) < 2 or not -shape[axis] <= self.index < shape[axis]:
            layout = "(N, T, …)" if self.batch_first else "(T, N, …)"
            raise ValueError(f"TimeStep(index={self.index}) needs an input {layout} with that step, got {shape}")
        step = self.index % shape[axis]
        self.save_for_backward(shape, step, type(x))
        return x[:, step, ...] if self.batch_first else x[step, ...]

    def backward(self, grad: Any) -> Any:
        """``g`` at the step, zeros at the others (one concatenation: no array is written)."""
        shape, step, array_type = self.saved_tensors()
        axis = 1 if self.batch_first else 0
        grad = check_grad(self, grad, shape[:axis] + shape[axis + 1 :], array_type)
        xp = ops_of(grad).xp
        device = ops_of(grad).device_of(grad)
        parts = []
        for length, lo in ((step, True), (shape[axis] - step - 1, False)):
            if length:
                zeros = xp.zeros((*shape[:axis], length, *shape[axis + 1 :]), dtype=grad.dtype, device=device)
                parts.append((lo, zeros))
        before = [z for lo, z in parts if lo]
        after = [z for lo, z in parts if not lo]
        return xp.concat([*before, xp.expand_dims(grad, axis=axis), *after], axis=axis)
