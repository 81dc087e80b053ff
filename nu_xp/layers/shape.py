"""Layers that only rearrange: ``Flatten``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends import ops_of
from .base import Layer, check_grad
from .registry import register_layer

__all__ = ["Flatten"]


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
