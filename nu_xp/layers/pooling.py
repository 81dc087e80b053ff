"""Pooling: ``MaxPool1d/2d`` and ``AvgPool1d/2d``, as ``torch.nn`` (``stride`` defaults to ``kernel_size``).

With the ``K`` taps of [`nu_xp.layers.windows`][nu_xp.layers.windows]
(``tap_k[n, c, p] = x_pad[n, c, p·s + k]``)::

    max:  y = max_k tap_k           dL/dx: g goes to the first tap holding the maximum of its window
    avg:  y = (1/K) Σ_k tap_k        dL/dx: g / K goes to every tap of the window

and col2im ([`nu_xp.backends.Ops.add_taps`][nu_xp.backends.ops.Ops.add_taps]) adds the taps' gradients
back into the input (overlapping windows add up). A NaN in a window is its
maximum (``maximum`` propagates it, as PyTorch's output does; the gradient of
such a window goes to the last tap that beat its predecessors, not to the
NaN). Max pooling pads with ``-inf`` (padding never wins); average pooling
pads with zeros and, as PyTorch's default ``count_include_pad=True``, divides
by ``K`` everywhere, padding included.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from ..backends import dtype_kind, ops_of
from .base import Layer, check_grad
from .registry import register_layer
from .windows import as_tuple, offsets_on_data, output_shape, resolve_padding, tap_slices, unpad

__all__ = ["AvgPool1d", "AvgPool2d", "MaxPool1d", "MaxPool2d"]

#: marks what a forward through the backend's native kernel saved (``Ops.native_pool``)
NATIVE = object()


class _PoolNd(Layer):
    """Pooling over ``nd`` spatial axes; subclasses fix ``nd`` and the reduction."""

    nd: ClassVar[int] = 0
    pad_value: ClassVar[float] = 0.0

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = as_tuple(kernel_size, self.nd, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else as_tuple(stride, self.nd, "stride", name)
        self.padding = as_tuple(padding, self.nd, "padding", name, minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(
                f"{name}: padding {self.padding} must be at most half of kernel_size {self.kernel_size} (as PyTorch)"
            )
        self._pads = resolve_padding(self.padding, self.nd, self.kernel_size, (1,) * self.nd, self.stride, name)

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        return {}

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}

    def _checked(self, x: Any) -> tuple[Any, Any, tuple[int, ...]]:
        """``(ops, x as floats, the output's spatial shape)``; ``TypeError``/``ValueError`` for bad input."""
        name = type(self).__name__
        ops = ops_of(x)
        kind = dtype_kind(ops.xp, x.dtype)
        if kind == "i":
            x = ops.astype(x, getattr(ops.xp, self.backend.dtype_name))
        elif kind != "f":
            raise TypeError(f"{name} takes real numbers, got an array of dtype {x.dtype}")
        if x.ndim != self.nd + 2:
            want = "(N, C, L)" if self.nd == 1 else "(N, C, H, W)"
            raise ValueError(f"{name} expects input of shape {want}, got {tuple(x.shape)}")
        out = output_shape(tuple(x.shape[2:]), self.kernel_size, self.stride, self._pads, (1,) * self.nd, name)
        return ops, x, out

    def _windows(self, x: Any) -> tuple[Any, list, tuple, list]:
        """``(ops, the taps as arrays, geometry for backward, the taps' slices)`` for input ``x``; shape checked."""
        ops, x, out = self._checked(x)
        x_pad = ops.pad(x, self._pads, self.pad_value)
        on_data = offsets_on_data(self.kernel_size, self.stride, out, tuple(x.shape[2:]), self._pads)
        taps = tap_slices(self.kernel_size, self.stride, (1,) * self.nd, out, on_data)
        geometry = (tuple(x_pad.shape), (x.shape[0], x.shape[1], *out), type(x))
        return ops, [x_pad[t] for t in taps], geometry, taps

    def _col2im(self, ops: Any, parts: Any, taps: list, padded: tuple) -> Any:
        """``dL/dx`` from the taps' gradients ``parts`` (``(N, K, C, *out)``): col2im, then the padding cut off."""
        return unpad(ops.add_taps(parts, taps, padded), self._pads)


class _MaxPoolNd(_PoolNd):
    pad_value = -math.inf

    def forward(self, x: Any) -> Any:
        if ops_of(x).native_pool:  # the backend's own kernel (torch, numpy); the running maximum below is the reference
            ops, x, out = self._checked(x)
            y, kept = ops.max_pool(x, self.kernel_size, self.stride, self.padding)
            self.save_for_backward(NATIVE, kept, (x.shape[0], x.shape[1], *out), type(x))
            return y
        ops, parts, geometry, taps = self._windows(x)
        xp = ops.xp
        y = parts[0]
        winner = xp.zeros(y.shape, dtype=xp.int8 if len(parts) < 128 else xp.int32, device=ops.device_of(y))
        for k, part in enumerate(parts[1:], start=1):  # a running maximum: no stacked copy
            better = part > y  # strictly: a tie keeps the first maximum, as PyTorch
            winner = xp.where(better, xp.full_like(winner, k), winner)
            y = xp.maximum(y, part)  # maximum propagates a NaN wherever it is in the window
        self.save_for_backward(winner, geometry, taps)
        return y

    def backward(self, grad: Any) -> Any:
        saved = self.saved_tensors()
        if saved[0] is NATIVE:
            _, kept, out_shape, array_type = saved
            grad = check_grad(self, grad, out_shape, array_type)
            return ops_of(grad).max_pool_backward(grad, kept, self.kernel_size, self.stride, self.padding)
        winner, (padded, out_shape, array_type), taps = saved
        grad = check_grad(self, grad, out_shape, array_type)
        ops = ops_of(grad)
        xp = ops.xp
        k = xp.reshape(xp.arange(len(taps), dtype=winner.dtype, device=ops.device_of(winner)), (1, len(taps), 1))
        rest = math.prod(winner.shape[1:])  # every size named: a batch may be empty
        chosen = xp.reshape(winner, (winner.shape[0], 1, rest)) == k  # (N, K, C·out): the window's winner
        g = xp.reshape(grad, (grad.shape[0], 1, rest))
        parts = xp.where(chosen, g, xp.zeros_like(g))
        return self._col2im(ops, xp.reshape(parts, (grad.shape[0], len(taps), *grad.shape[1:])), taps, padded)


class _AvgPoolNd(_PoolNd):
    def forward(self, x: Any) -> Any:
        if ops_of(x).native_pool:  # the backend's own kernel (torch, numpy); the sum of taps below is the reference
            ops, x, out = self._checked(x)
            y, kept = ops.avg_pool(x, self.kernel_size, self.stride, self.padding)
            self.save_for_backward(NATIVE, kept, (x.shape[0], x.shape[1], *out), type(x))
            return y
        _, parts, geometry, taps = self._windows(x)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        self.save_for_backward(geometry, taps)
        return total / math.prod(self.kernel_size)  # every tap counts, padding included (taps only on padding add 0)

    def backward(self, grad: Any) -> Any:
        saved = self.saved_tensors()
        if saved[0] is NATIVE:
            _, kept, out_shape, array_type = saved
            grad = check_grad(self, grad, out_shape, array_type)
            return ops_of(grad).avg_pool_backward(grad, kept, self.kernel_size, self.stride, self.padding)
        (padded, out_shape, array_type), taps = saved
        grad = check_grad(self, grad, out_shape, array_type)
        ops = ops_of(grad)
        xp = ops.xp
        share = xp.reshape(grad / math.prod(self.kernel_size), (grad.shape[0], 1, *grad.shape[1:]))
        parts = xp.broadcast_to(share, (grad.shape[0], len(taps), *grad.shape[1:]))
        return self._col2im(ops, parts, taps, padded)


@register_layer
class MaxPool1d(_MaxPoolNd):
    """``y[n, c, p] = max_k x_pad[n, c, p·stride + k]`` on ``(N, C, L)``; see
    [`nu_xp.layers.pooling`][nu_xp.layers.pooling].

    Parameters
    ----------
    kernel_size : int or tuple of int
        The window's extent per spatial axis.
    stride : int or tuple of int, optional
        The step between two windows; default: ``kernel_size`` (windows side by side).
    padding : int or tuple of int, default 0
        Added on both sides of each spatial axis (at most half the kernel): ``-inf`` for max pooling,
        zeros (counted in the average) for average pooling.
    """

    nd = 1


@register_layer
class MaxPool2d(_MaxPoolNd):
    """The maximum of each ``kh × kw`` window of ``(N, C, H, W)``; see
    [`nu_xp.layers.pooling`][nu_xp.layers.pooling].

    Parameters
    ----------
    kernel_size, stride, padding :
        As for [`MaxPool1d`][nu_xp.layers.pooling.MaxPool1d]; each an int (every axis) or a pair.
    """

    nd = 2


@register_layer
class AvgPool1d(_AvgPoolNd):
    """``y[n, c, p] = (1/k) Σ_k x_pad[n, c, p·stride + k]`` on ``(N, C, L)``; see
    [`nu_xp.layers.pooling`][nu_xp.layers.pooling].

    Parameters
    ----------
    kernel_size, stride, padding :
        As for [`MaxPool1d`][nu_xp.layers.pooling.MaxPool1d] (average pooling pads with zeros, counted in the mean).
    """

    nd = 1


@register_layer
class AvgPool2d(_AvgPoolNd):
    """The mean of each ``kh × kw`` window of ``(N, C, H, W)`` (padding counted); see
    [`nu_xp.layers.pooling`][nu_xp.layers.pooling].

    Parameters
    ----------
    kernel_size, stride, padding :
        As for [`MaxPool1d`][nu_xp.layers.pooling.MaxPool1d]; each an int (every axis) or a pair.
    """

    nd = 2
