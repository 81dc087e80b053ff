"""Convolutions: ``Conv1d`` on ``(N, C, L)`` and ``Conv2d`` on ``(N, C, H, W)``, as ``torch.nn.Conv1d/2d``.

Forward (cross-correlation, as every deep-learning library computes it), for
output channel ``o`` in group ``g`` and output position ``p``::

    y[n, o, p] = b[o] + Σ_c Σ_k W[o, c, k] · x_pad[n, g·C_g + c, p·s + k·d]

With the windows of [`nu_xp.layers.windows`][nu_xp.layers.windows] stacked into
``cols[(c, k), (n, p)] = x_pad[n, c, p·s + k·d]`` (shape ``(C·K, N·L)``, ``K``
kernel taps, ``L`` output positions) this is ONE matrix product,
``Y = W2 @ cols`` with ``W2 = W.reshape(C_out, C_in/groups · K)`` and
``Y[o, (n, p)] = y[n, o, p]``, so the gradients are those of ``Linear``::

    dL/dW2 = G @ cols.T        dL/db = Σ_{n,p} g[n, :, p]        dL/dcols = W2.T @ G

(``G`` is ``g`` laid out as ``Y``), and ``dL/dx`` is col2im(dL/dcols): each
tap's gradient added back into the slice of ``x_pad`` it was read from (an
input element that several windows read gets the sum), padding dropped.
The taps are read from ``x`` transposed to ``(C, N, …)``, so that stacking
them gives ``cols`` already in GEMM layout. Cost: the three GEMMs of a
``Linear`` with ``C·K`` inputs at ``N·L`` positions, plus ``K`` strided copies
each way and one transpose of the input, output and their gradients.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..backends import Backend
from ..initializers import check_init, host_rng, initial_weights
from ..validation import check_positive_int
from .base import Layer, check_grad
from .parameter import Parameter, accumulate
from .registry import register_layer
from .windows import as_tuple, output_shape, resolve_padding, tap_slices, unpad

__all__ = ["Conv1d", "Conv2d"]

#: marks what a forward through the backend's native kernel saved (``Ops.native_conv``)
NATIVE = object()


def init_parameters(
    layer: Any, fan_in: int, fan_out: int, seed: int | None, shapes: dict[str, tuple[int, ...]], bias: bool
) -> None:
    """``layer.weight`` (shape ``shapes["weight"]``) and ``layer.bias`` (``out_channels`` or None) drawn by
    ``layer.init`` from ``fan_in``/``fan_out`` on the host: what a convolution and a transposed one share
    (they differ in their fans: PyTorch's fan-in is ``weight.size(1)·K`` for both layouts)."""
    be = layer.backend
    w, b = initial_weights(
        layer.init, fan_in, fan_out, host_rng(seed), be.dtype_name, shape=shapes["weight"], bias_size=layer.out_channels
    )
    layer.weight = Parameter(be.from_host(w))
    layer.bias = Parameter(be.from_host(b)) if bias else None


class _ConvNd(Layer):
    """The convolution over ``nd`` spatial axes; ``Conv1d`` and ``Conv2d`` fix ``nd``."""

    weight: Parameter
    bias: Parameter | None

    nd: ClassVar[int] = 0
    _backend: Backend

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        init: str = "auto",
        seed: int | None = None,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "kernel_size": kernel_size,
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
            "bias": bias,
        }
        shapes = self.parameter_shapes(config)
        check_init(init)
        super().__init__(backend=backend, device=device, dtype=dtype)
        name = type(self).__name__
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = as_tuple(kernel_size, self.nd, "kernel_size", name)
        self.stride = as_tuple(stride, self.nd, "stride", name)
        self.dilation = as_tuple(dilation, self.nd, "dilation", name)
        self.padding = padding if isinstance(padding, str) else as_tuple(padding, self.nd, "padding", name, minimum=0)
        self._pads = resolve_padding(padding, self.nd, self.kernel_size, self.dilation, self.stride, name)
        self.init = init
        taps = math.prod(self.kernel_size)
        init_parameters(self, self.in_channels // self.groups * taps, self.out_channels * taps, seed, shapes, bias)

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """``weight (C_out, C_in/groups, *kernel)`` and ``bias (C_out,)``; every argument checked."""
        name = cls.__name__
        c_in = check_positive_int("in_channels", config.get("in_channels"))
        c_out = check_positive_int("out_channels", config.get("out_channels"))
        groups = check_positive_int("groups", config.get("groups", 1))
        if c_in % groups or c_out % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={c_in} and out_channels={c_out}")
        kernel = as_tuple(config.get("kernel_size"), cls.nd, "kernel_size", name)
        stride = as_tuple(config.get("stride", 1), cls.nd, "stride", name)
        dilation = as_tuple(config.get("dilation", 1), cls.nd, "dilation", name)
        resolve_padding(config.get("padding", 0), cls.nd, kernel, dilation, stride, name)
        bias = config.get("bias", True)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"{name}: bias must be True or False, got {bias!r}")
        return {"weight": (c_out, c_in // groups, *kernel), **({"bias": (c_out,)} if bias else {})}

    def get_config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.bias is not None,
            "init": self.init,
        }

    def forward(self, x: Any) -> Any:
        be = self._backend
        x = be.check(x)
        name = type(self).__name__
        if x.ndim != self.nd + 2 or x.shape[1] != self.in_channels:
            want = "(N, C, L)" if self.nd == 1 else "(N, C, H, W)"
            hint = ""
            if x.ndim == self.nd + 2 and x.shape[-1] == self.in_channels:  # channels last, as images often come
                order = (0, self.nd + 1, *range(1, self.nd + 1))
                hint = (
                    f"; the channels look last: move them to axis 1 with x.transpose{order} "
                    f"(numpy; torch: x.permute{order})"
                )
            raise ValueError(
                f"{name}({self.in_channels}, {self.out_channels}) expects input of shape {want} with "
                f"C = {self.in_channels}, got {tuple(x.shape)}{hint}"
            )
        ops, xp = be.ops, be.xp
        out = output_shape(tuple(x.shape[2:]), self.kernel_size, self.stride, self._pads, self.dilation, name)
        if ops.native_conv:  # the backend's own kernel (torch: oneDNN, cuDNN; numpy: batch last); the reference below
            bias = self.bias.data if self.bias is not None else None
            y, kept = ops.conv(x, self.weight.data, bias, self.stride, self._pads, self.dilation, self.groups)
            self.save_for_backward(NATIVE, kept, (x.shape[0], self.out_channels, *out))
            return y
        n, g, positions = x.shape[0], self.groups, math.prod(out)
        x_pad = ops.pad(xp.permute_dims(x, (1, 0, *range(2, x.ndim))), self._pads)  # (C, N, *padded)
        taps = tap_slices(self.kernel_size, self.stride, self.dilation, out)
        cols = ops.stack_taps(x_pad, taps)  # (C, K, N, *out): the GEMM's right operand
        cols = xp.reshape(cols, (g, self.in_channels // g * len(taps), n * positions))
        w = xp.reshape(self.weight.data, (g, self.out_channels // g, self.in_channels // g * len(taps)))
        y = xp.reshape(w @ cols, (self.out_channels, n, *out))  # one GEMM (per group)
        if self.bias is not None:
            y = y + xp.reshape(self.bias.data, (self.out_channels, *([1] * (self.nd + 1))))
        self.save_for_backward(cols, tuple(x_pad.shape), taps, out, n)
        return xp.permute_dims(y, (1, 0, *range(2, y.ndim)))

    def backward(self, grad: Any, *, input_grad: bool = True) -> Any:
        """Accumulate ``dL/dW`` and ``dL/db``; return ``dL/dx`` (None with ``input_grad=False``)."""
        saved = self.saved_tensors()
        if saved[0] is NATIVE:  # the forward ran the backend's own kernel: so does the backward
            return self._native_backward(grad, *saved[1:], input_grad=input_grad)
        cols, padded, taps, out, n = saved
        be = self._backend
        ops, xp = be.ops, be.xp
        grad = check_grad(self, grad, (n, self.out_channels, *out), be)
        g = self.groups
        g_t = xp.permute_dims(grad, (1, 0, *range(2, grad.ndim)))  # (C_out, N, *out), as Y
        g3 = xp.reshape(g_t, (g, self.out_channels // g, n * math.prod(out)))
        if self.weight.requires_grad:  # a frozen weight costs no GEMM
            accumulate(self.weight, xp.reshape(g3 @ xp.matrix_transpose(cols), self.weight.data.shape))
        if self.bias is not None and self.bias.requires_grad:
            accumulate(self.bias, ops.sum(xp.reshape(g3, (self.out_channels, n * math.prod(out))), axis=1))
        if not input_grad:
            return None
        w = xp.reshape(self.weight.data, (g, self.out_channels // g, self.in_channels // g * len(taps)))
        dcols = xp.reshape(xp.matrix_transpose(w) @ g3, (self.in_channels, len(taps), n, *out))
        dx = unpad(ops.add_taps(dcols, taps, padded), self._pads)
        return xp.permute_dims(dx, (1, 0, *range(2, dx.ndim)))

    def _native_backward(self, grad: Any, kept: Any, out_shape: tuple[int, ...], *, input_grad: bool) -> Any:
        """The backend's ``conv_backward`` (``Ops.native_conv``): dL/dW and dL/db accumulated, dL/dx returned."""
        be = self._backend
        grad = check_grad(self, grad, out_shape, be)
        geometry = (self.stride, self._pads, self.dilation, self.groups)
        dx, dw, db = be.ops.conv_backward(grad, kept, self.weight.data, self.bias is not None, *geometry, input_grad)
        accumulate(self.weight, dw)
        if self.bias is not None:
            accumulate(self.bias, db)
        return dx


@register_layer
class Conv1d(_ConvNd):
    """1-D convolution on ``(N, C_in, L)`` → ``(N, C_out, L_out)``; weight ``(C_out, C_in/groups, k)``.

    ``L_out = floor((L + 2·padding - dilation·(k - 1) - 1) / stride) + 1``.
    The formulas and their gradients are in [`nu_xp.layers.conv`][nu_xp.layers.conv].

    Parameters
    ----------
    in_channels : int
        ``C_in``, the channels of the input.
    out_channels : int
        ``C_out``, the channels of the output (the number of kernels).
    kernel_size : int or tuple of int
        The kernel's extent per spatial axis.
    stride : int or tuple of int, default 1
        The step between two windows.
    padding : int, tuple of int, "same" or "valid", default 0
        Zeros added on both sides of each spatial axis; ``"same"`` keeps the size (stride 1 only).
    dilation : int or tuple of int, default 1
        The spacing between kernel taps.
    groups : int, default 1
        Input and output channels split into ``groups`` independent convolutions (must divide both).
    bias : bool, default True
        Whether to add a learned bias per output channel.
    init : {"auto", "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal", "zeros"}, default "auto"
        Initial weights; ``"auto"`` is PyTorch's default (uniform, bound ``1/√fan_in``).
    seed : int, optional
        Seed of the host generator that draws the initial values (the same on every backend).
    backend, device, dtype : optional
        Where the parameters live, as for every [`Layer`][nu_xp.layers.base.Layer] (default: the current backend).

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> conv = nu_xp.Conv1d(1, 4, kernel_size=5, stride=2, padding=1, seed=0)
    >>> conv(np.zeros((8, 1, 40), dtype=np.float32)).shape
    (8, 4, 19)
    """

    nd = 1


@register_layer
class Conv2d(_ConvNd):
    """2-D convolution on ``(N, C_in, H, W)`` → ``(N, C_out, H_out, W_out)``; weight ``(C_out, C_in/groups, kh, kw)``.

    Each spatial axis follows the ``Conv1d`` size formula. The formulas and
    their gradients are in [`nu_xp.layers.conv`][nu_xp.layers.conv].

    Parameters
    ----------
    kernel_size, stride, padding, dilation : int or pair of int
        As for [`Conv1d`][nu_xp.layers.conv.Conv1d], each an int (both axes) or a pair ``(height, width)``.
    in_channels, out_channels, groups, bias, init, seed, backend, device, dtype :
        As for [`Conv1d`][nu_xp.layers.conv.Conv1d].

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> conv = nu_xp.Conv2d(1, 6, kernel_size=5, padding="same", seed=0)
    >>> conv(np.zeros((2, 1, 28, 28), dtype=np.float32)).shape
    (2, 6, 28, 28)
    """

    nd = 2
