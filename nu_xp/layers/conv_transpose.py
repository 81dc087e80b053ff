"""Transposed convolutions: ``ConvTranspose1d`` and ``ConvTranspose2d``, as ``torch.nn.ConvTranspose1d/2d``.

The forward of a transposed convolution is the backward of a convolution
with respect to its input (hence the name, and its use as the "upsampling
convolution" of decoders): each input element ``x[n, c, i]`` spreads its
value, weighted by the kernel, over the output window that starts at
``i·s``. For input channel ``c`` of group ``g``, output channel ``o`` (of that
group) and kernel tap ``k``::

    y_full[n, g·C_g' + o, i·s + k·d] += W[c, o, k] · x[n, c, i]        y = y_full[p : p + L_out] + b

with ``L_out = (L_in - 1)·s - 2p + d·(K - 1) + output_padding + 1`` (``output_padding``
extends the end, to pick one of the sizes a strided convolution maps to the
same input size). In the im2col layout of [`nu_xp.layers.conv`][nu_xp.layers.conv]
with ``W2 = W`` seen as ``(C_in, C_out/groups · K)``, that is
``cols = W2.T @ X`` (one GEMM per group, ``X`` the input as ``(C_in, N·L_in)``)
followed by col2im (``Ops.add_taps``), exactly a convolution's input
gradient; its gradients are therefore a convolution's forward and weight
gradient::

    cols_g = im2col(pad(g, p))          dL/dx = W2 @ cols_g          dL/dW2 = X @ cols_g.T          dL/db = Σ g

Where the backend has its own kernels (``Ops.native_conv_transpose``: torch's
oneDNN and cuDNN, NumPy's batch-last GEMMs) the layer calls ``Ops.conv_transpose`` and its backward; the
formulas above stay the reference the tests compare them with.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from ..backends import Backend
from ..initializers import check_init
from ..validation import check_bool, check_positive_int
from .base import Layer, check_grad
from .conv import init_parameters
from .parameter import Parameter, accumulate
from .registry import register_layer
from .windows import as_tuple, tap_slices

__all__ = ["ConvTranspose1d", "ConvTranspose2d"]

#: marks what a forward through the backend's native kernel saved (``Ops.native_conv_transpose``)
NATIVE = object()


class _ConvTransposeNd(Layer):
    """The transposed convolution over ``nd`` spatial axes; ``ConvTranspose1d`` and ``ConvTranspose2d`` fix ``nd``."""

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
        padding: int | tuple[int, ...] = 0,
        output_padding: int | tuple[int, ...] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, ...] = 1,
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
            "output_padding": output_padding,
            "groups": groups,
            "bias": bias,
            "dilation": dilation,
        }
        shapes = self.parameter_shapes(config)
        check_init(init)
        super().__init__(backend=backend, device=device, dtype=dtype)
        name = type(self).__name__
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = as_tuple(kernel_size, self.nd, "kernel_size", name)
        self.stride = as_tuple(stride, self.nd, "stride", name)
        self.padding = as_tuple(padding, self.nd, "padding", name, minimum=0)
        self.output_padding = as_tuple(output_padding, self.nd, "output_padding", name, minimum=0)
        self.dilation = as_tuple(dilation, self.nd, "dilation", name)
        self.init = init
        taps = math.prod(self.kernel_size)
        # PyTorch's fan-in of a transposed convolution is weight.size(1) · K: C_out/groups · K
        init_parameters(self, self.out_channels // self.groups * taps, self.in_channels * taps, seed, shapes, bias)

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """``weight (C_in, C_out/groups, *kernel)`` and ``bias (C_out,)``; every argument checked.

        ``output_padding`` must be smaller than the stride or the dilation (PyTorch's rule: otherwise the
        extra positions would be ones no input reaches in any alignment).
        """
        name = cls.__name__
        c_in = check_positive_int("in_channels", config.get("in_channels"))
        c_out = check_positive_int("out_channels", config.get("out_channels"))
        groups = check_positive_int("groups", config.get("groups", 1))
        if c_in % groups or c_out % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={c_in} and out_channels={c_out}")
        kernel = as_tuple(config.get("kernel_size"), cls.nd, "kernel_size", name)
        stride = as_tuple(config.get("stride", 1), cls.nd, "stride", name)
        as_tuple(config.get("padding", 0), cls.nd, "padding", name, minimum=0)
        extra = as_tuple(config.get("output_padding", 0), cls.nd, "output_padding", name, minimum=0)
        dilation = as_tuple(config.get("dilation", 1), cls.nd, "dilation", name)
        if any(op >= max(s, d) for op, s, d in zip(extra, stride, dilation)):
            raise ValueError(
                f"{name}: output_padding {extra} must be smaller than the stride {stride} or the dilation "
                f"{dilation} (as PyTorch)"
            )
        bias = check_bool(f"{name}: bias", config.get("bias", True))
        return {"weight": (c_in, c_out // groups, *kernel), **({"bias": (c_out,)} if bias else {})}

    def get_config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "output_padding": list(self.output_padding),
            "groups": self.groups,
            "bias": self.bias is not None,
            "dilation": list(self.dilation),
            "init": self.init,
        }

    def output_size(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """``(L_in - 1)·s - 2p + d·(K - 1) + output_padding + 1`` per spatial axis."""
        return tuple(
            (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            for n, s, p, d, k, op in zip(
                spatial, self.stride, self.padding, self.dilation, self.kernel_size, self.output_padding
            )
        )

    def forward(self, x: Any) -> Any:
        be = self._backend
        x = be.check(x)
        name = type(self).__name__
        if x.ndim != self.nd + 2 or x.shape[1] != self.in_channels:
            want = "(N, C, L)" if self.nd == 1 else "(N, C, H, W)"
            raise ValueError(
                f"{name}({self.in_channels}, {self.out_channels}) expects input of shape {want} with "
                f"C = {self.in_channels}, got {tuple(x.shape)}"
            )
        spatial = tuple(x.shape[2:])
        out = self.output_size(spatial)
        if any(n < 1 for n in out):
            raise ValueError(
                f"{name}: input spatial shape {spatial} gives output {out}: the padding {self.padding} removes "
                "more than the transposed convolution makes"
            )
        ops, xp = be.ops, be.xp
        if ops.native_conv_transpose:  # the backend's own kernel; the formula below is the reference
            bias = self.bias.data if self.bias is not None else None
            geometry = (self.stride, self.padding, self.output_padding, self.dilation, self.groups)
            y, kept = ops.conv_transpose(x, self.weight.data, bias, *geometry)
            self.save_for_backward(NATIVE, kept, (x.shape[0], self.out_channels, *out))
            return y
        n, g, k = x.shape[0], self.groups, math.prod(self.kernel_size)
        x3 = xp.reshape(
            xp.permute_dims(x, (1, 0, *range(2, x.ndim))), (g, self.in_channels // g, n * math.prod(spatial))
        )
        w2 = xp.reshape(self.weight.data, (g, self.in_channels // g, self.out_channels // g * k))
        cols = xp.reshape(xp.matrix_transpose(w2) @ x3, (self.out_channels, k, n, *spatial))  # one GEMM per group
        full = self._full(spatial)
        taps = tap_slices(self.kernel_size, self.stride, self.dilation, spatial)
        y = ops.add_taps(cols, taps, (self.out_channels, n, *full))  # col2im: (C_out, N, *full)
        y = y[(slice(None), slice(None), *(slice(p, p + m) for p, m in zip(self.padding, out)))]
        if self.bias is not None:
            y = y + xp.reshape(self.bias.data, (self.out_channels, *([1] * (self.nd + 1))))
        self.save_for_backward(x3, spatial, out, n)
        return xp.permute_dims(y, (1, 0, *range(2, y.ndim)))

    def _full(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """The uncropped output: every position a tap writes, and ``output_padding`` more at the end."""
        return tuple(
            (n - 1) * s + d * (k - 1) + 1 + op
            for n, s, d, k, op in zip(spatial, self.stride, self.dilation, self.kernel_size, self.output_padding)
        )

    def backward(self, grad: Any, *, input_grad: bool = True) -> Any:
        """Accumulate ``dL/dW`` and ``dL/db``; return ``dL/dx`` (None with ``input_grad=False``)."""
        saved = self.saved_tensors()
        if saved[0] is NATIVE:
            return self._native_backward(grad, *saved[1:], input_grad=input_grad)
        x3, spatial, out, n = saved
        be = self._backend
        ops, xp = be.ops, be.xp
        grad = check_grad(self, grad, (n, self.out_channels, *out), be)
        g, k = self.groups, math.prod(self.kernel_size)
        g_t = xp.permute_dims(grad, (1, 0, *range(2, grad.ndim)))  # (C_out, N, *out)
        full = self._full(spatial)
        pads = tuple((p, f - p - m) for p, f, m in zip(self.padding, full, out))
        taps = tap_slices(self.kernel_size, self.stride, self.dilation, spatial)
        cols = ops.stack_taps(ops.pad(g_t, pads), taps)  # im2col of the gradient: (C_out, K, N, *in)
        cols = xp.reshape(cols, (g, self.out_channels // g * k, n * math.prod(spatial)))
        if self.weight.requires_grad:
            accumulate(self.weight, xp.reshape(x3 @ xp.matrix_transpose(cols), self.weight.data.shape))
        if self.bias is not None and self.bias.requires_grad:
            accumulate(self.bias, ops.sum(xp.reshape(g_t, (self.out_channels, n * math.prod(out))), axis=1))
        if not input_grad:
            return None
        w2 = xp.reshape(self.weight.data, (g, self.in_channels // g, self.out_channels // g * k))
        dx = xp.reshape(w2 @ cols, (self.in_channels, n, *spatial))  # a convolution of the gradient
        return xp.permute_dims(dx, (1, 0, *range(2, dx.ndim)))

    def _native_backward(self, grad: Any, kept: Any, out_shape: tuple[int, ...], *, input_grad: bool) -> Any:
        """The backend's ``conv_transpose_backward``: dL/dW and dL/db accumulated, dL/dx returned."""
        be = self._backend
        grad = check_grad(self, grad, out_shape, be)
        geometry = (self.stride, self.padding, self.output_padding, self.dilation, self.groups)
        dx, dw, db = be.ops.conv_transpose_backward(
            grad, kept, self.weight.data, self.bias is not None, *geometry, input_grad
        )
        accumulate(self.weight, dw)
        if self.bias is not None:
            accumulate(self.bias, db)
        return dx


@register_layer
class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution on ``(N, C_in, L)`` → ``(N, C_out, L_out)``; weight ``(C_in, C_out/groups, k)``.

    ``L_out = (L - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1``: with
    ``kernel_size = stride`` and no padding, each input position becomes ``stride`` output positions (a
    learned upsampling). The forward is a convolution's input gradient; the formulas and gradients are in
    [`nu_xp.layers.conv_transpose`][nu_xp.layers.conv_transpose].

    Parameters
    ----------
    in_channels, out_channels : int
        The channels of the input and of the output.
    kernel_size : int or tuple of int
        The kernel's extent per spatial axis.
    stride : int or tuple of int, default 1
        The step between the output windows of two neighbouring inputs (the upsampling factor).
    padding : int or tuple of int, default 0
        ``dilation·(k - 1) - padding`` zeros of implicit padding: the output is cropped by ``padding`` on
        both sides (the inverse of a convolution's ``padding``).
    output_padding : int or tuple of int, default 0
        Extra positions at the end of each axis (smaller than the stride or the dilation).
    groups : int, default 1
        Independent transposed convolutions over channel groups (must divide both channel counts).
    bias : bool, default True
        Whether to add a learned bias per output channel.
    dilation : int or tuple of int, default 1
        The spacing between kernel taps.
    init : {"auto", "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal", "zeros"}, default "auto"
        Initial weights; ``"auto"`` is PyTorch's (uniform, bound ``1/√(C_out/groups · K)``).
    seed : int, optional
        Seed of the host generator that draws the initial values (the same on every backend).
    backend, device, dtype : optional
        Where the parameters live, as for every [`Layer`][nu_xp.layers.base.Layer] (default: the current backend).

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> up = nu_xp.ConvTranspose1d(4, 2, kernel_size=2, stride=2, seed=0)
    >>> up(np.zeros((8, 4, 10), dtype=np.float32)).shape
    (8, 2, 20)
    """

    nd = 1


@register_layer
class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution on ``(N, C_in, H, W)`` → ``(N, C_out, H_out, W_out)``; weight
    ``(C_in, C_out/groups, kh, kw)``.

    Each spatial axis follows the ``ConvTranspose1d`` size formula. The formulas and gradients are in
    [`nu_xp.layers.conv_transpose`][nu_xp.layers.conv_transpose].

    Parameters
    ----------
    kernel_size, stride, padding, output_padding, dilation : int or pair of int
        As for [`ConvTranspose1d`][nu_xp.layers.conv_transpose.ConvTranspose1d], each an int (both axes)
        or a pair ``(height, width)``.
    in_channels, out_channels, groups, bias, init, seed, backend, device, dtype :
        As for [`ConvTranspose1d`][nu_xp.layers.conv_transpose.ConvTranspose1d].

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> up = nu_xp.ConvTranspose2d(8, 1, kernel_size=4, stride=2, padding=1, seed=0)
    >>> up(np.zeros((2, 8, 4, 4), dtype=np.float32)).shape
    (2, 1, 8, 8)
    """

    nd = 2
