"""The ``"torch"`` backend: PyTorch tensors, on the CPU or a CUDA device.

The namespace is ``array_api_compat.torch``. Fast kernels: the compat
``maximum``/``minimum`` with a Python scalar build a tensor for the scalar and
promote (~10 µs); ``torch.clamp_min``/``clamp_max`` give the same floating
result in ~2.5 µs. ``sum`` and ``astype`` call torch without the compat
argument translation. Measured on the benchmark machine (``benchmarks/RESULTS.md``);
``tests/backends/test_ops.py`` checks them against the standard functions.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar, NamedTuple

import array_api_compat
import numpy as np

from .ops import Ops

__all__ = ["TorchOps"]


class _NativeLayerNorm(NamedTuple):
    """What ``aten.native_layer_norm`` leaves for its backward: the input, ``μ`` and ``1/σ``."""

    x: Any
    mean: Any
    rstd: Any


class TorchOps(Ops):
    """PyTorch tensors; scalar clamps and reductions sent straight to torch."""

    name: ClassVar[str] = "torch"
    modules: ClassVar[tuple[str, ...]] = ("torch", "array_api_compat.torch")
    namespace_module: ClassVar[str] = "array_api_compat.torch"
    package: ClassVar[str] = "torch"
    extra: ClassVar[str] = "torch"
    array_noun: ClassVar[str] = "a torch tensor"

    reads_state_dict_files: ClassVar[bool] = True

    @classmethod
    def load_state_dict_file(cls, f: Any) -> Any:
        """``torch.load(f, map_location="cpu", weights_only=True)``: PyTorch's restricted unpickler (tensors,
        dicts, lists, numbers; any other object refused, so no code in the file runs)."""
        import torch

        return torch.load(f, map_location="cpu", weights_only=True)

    @classmethod
    def tensor_to_numpy(cls, value: Any) -> Any:
        """A host copy of a tensor (bfloat16 widened to float32, exactly); None for anything else."""
        import torch

        if not isinstance(value, torch.Tensor):
            return None
        t = value.detach().cpu()
        return np.array((t.float() if t.dtype == torch.bfloat16 else t).numpy(), copy=True)

    def __init__(self) -> None:
        super().__init__()
        # ``torch.clamp_min``/``clamp_max`` themselves: 2.5 µs instead of ~10 µs for the compat
        # ``maximum``/``minimum`` with a Python scalar (they build a tensor for it and promote)
        self.clamp_min = self.library.clamp_min  # type: ignore[method-assign]
        self.clamp_max = self.library.clamp_max  # type: ignore[method-assign]

    @classmethod
    def is_array(cls, x: Any) -> bool:
        return array_api_compat.is_torch_array(x)

    def default_device(self) -> Any:
        return self.library.device("cpu")

    def resolve_device(self, device: Any) -> Any:
        torch = self.library
        dev = torch.device("cpu" if device is None else device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} needs CUDA, which this torch build cannot use; use device='cpu'")
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        return dev

    def is_host(self, device: Any) -> bool:
        return getattr(device, "type", "cpu") == "cpu"

    def synchronize(self, device: Any) -> None:
        if getattr(device, "type", None) == "cuda":
            self.library.cuda.synchronize(device)

    def to_host(self, x: Any) -> Any:
        """``x.detach().cpu().numpy()`` (a CUDA tensor cannot go through ``numpy.asarray``)."""
        return x.detach().cpu().numpy()

    # fast kernels
    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """``torch.sum`` for floating tensors, without the compat wrapper's argument translation."""
        if x.is_floating_point():
            if axis is None:
                return self.library.sum(x) if not keepdims else self.xp.sum(x, keepdims=True)
            return self.library.sum(x, dim=axis, keepdim=keepdims)
        return self.xp.sum(x, axis=axis, keepdims=keepdims)

    def astype(self, x: Any, dtype: Any) -> Any:
        """``Tensor.to(dtype, copy=True)``."""
        return x.to(dtype, copy=True)

    def erf(self, x: Any) -> Any:
        """``torch.special.erf`` (native)."""
        return self.library.special.erf(x)

    def gelu(self, x: Any, approximate: str = "none") -> tuple[Any, Any]:
        """``torch.nn.functional.gelu`` (one fused kernel); keeps ``x`` for ATen's ``gelu_backward``, clipped to
        ±40 for ``"tanh"`` (whose backward takes ``x³``: NaN at 1e30 in float32; the slope is 0 or 1 there)."""
        kept = x if approximate == "none" else self.library.clamp(x, -40.0, 40.0)
        return self.library.nn.functional.gelu(x, approximate=approximate), kept

    def gelu_backward(self, grad: Any, kept: Any, approximate: str = "none") -> Any:
        """``aten.gelu_backward(g, x)``: the slope computed and applied in one pass."""
        return self.library.ops.aten.gelu_backward(grad, kept, approximate=approximate)

    def layer_norm(self, x: Any, weight: Any, bias: Any, dims: int, eps: float) -> tuple[Any, Any]:
        """``aten.native_layer_norm`` (one kernel; keeps ``x``, ``μ`` and ``1/σ`` for its backward) where the
        parameters have the input's dtype and the input is not empty; else the reference formula."""
        if x.numel() == 0 or any(p is not None and p.dtype != x.dtype for p in (weight, bias)):
            return super().layer_norm(x, weight, bias, dims, eps)
        y, mean, rstd = self.library.ops.aten.native_layer_norm(x, list(x.shape[x.ndim - dims :]), weight, bias, eps)
        return y, _NativeLayerNorm(x, mean, rstd)

    def layer_norm_backward(
        self, grad: Any, kept: Any, weight: Any, bias: Any, dims: int, needs: tuple[bool, bool, bool]
    ) -> tuple[Any, Any, Any]:
        """``aten.native_layer_norm_backward`` (one kernel for all three gradients) after the native forward."""
        if not isinstance(kept, _NativeLayerNorm):
            return super().layer_norm_backward(grad, kept, weight, bias, dims, needs)
        mask = [needs[0], needs[1] and weight is not None, needs[2] and bias is not None]
        d_x, d_weight, d_bias = self.library.ops.aten.native_layer_norm_backward(
            grad, kept.x, list(kept.x.shape[kept.x.ndim - dims :]), kept.mean, kept.rstd, weight, bias, mask
        )
        return (d_x if mask[0] else None), (d_weight if mask[1] else None), (d_bias if mask[2] else None)

    def index_add(self, table: Any, indices: Any, values: Any) -> Any:
        """``Tensor.index_add`` (one native kernel)."""
        return table.index_add(0, indices, values)

    # mixed precision: both half formats, on the CPU and on CUDA
    low_precision_dtypes = ("bfloat16", "float16")

    @classmethod
    def set_float32_matmul_precision(cls, precision: str) -> None:
        """``torch.set_float32_matmul_precision`` (when torch is installed)."""
        try:
            import torch
        except ImportError:
            return
        torch.set_float32_matmul_precision(precision)

    @classmethod
    def set_num_threads(cls, threads: int) -> None:
        """``torch.set_num_threads`` (its intra-op threads), when torch is already imported (never imports it)."""
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(threads)

    # convolution: oneDNN on the CPU, cuDNN on CUDA (the im2col path stays the reference, and the test)
    native_conv = True
    native_conv_transpose = True

    def _symmetric(self, x: Any, pads: tuple[tuple[int, int], ...]) -> tuple[Any, list[int]]:
        """``x`` and torch's symmetric ``padding``; uneven pads (``"same"`` with an even kernel) are applied first."""
        if all(lo == hi for lo, hi in pads):
            return x, [lo for lo, _ in pads]
        flat = [p for lo, hi in reversed(pads) for p in (lo, hi)]  # F.pad lists the last axis first
        return self.library.nn.functional.pad(x, flat), [0] * len(pads)

    def conv(
        self,
        x: Any,
        weight: Any,
        bias: Any,
        stride: tuple[int, ...],
        pads: tuple[tuple[int, int], ...],
        dilation: tuple[int, ...],
        groups: int,
    ) -> tuple[Any, Any]:
        """``torch.nn.functional.conv1d``/``conv2d``; what the backward keeps is the input."""
        padded, padding = self._symmetric(x, pads)
        functional = self.library.nn.functional
        fn = functional.conv1d if x.ndim == 3 else functional.conv2d
        return fn(padded, weight, bias, list(stride), padding, list(dilation), groups), x

    def conv_backward(
        self,
        grad: Any,
        saved: Any,
        weight: Any,
        has_bias: bool,
        stride: tuple[int, ...],
        pads: tuple[tuple[int, int], ...],
        dilation: tuple[int, ...],
        groups: int,
        input_grad: bool,
    ) -> tuple[Any, Any, Any]:
        """``aten.convolution_backward``: the three gradients in one call, as PyTorch's autograd computes them."""
        x = saved
        padded, padding = self._symmetric(x, pads)
        nd = x.ndim - 2
        dx, dw, db = self.library.ops.aten.convolution_backward(
            grad.contiguous(),
            padded,
            weight,
            [weight.shape[0]] if has_bias else None,
            list(stride),
            padding,
            list(dilation),
            False,
            [0] * nd,
            groups,
            [input_grad, True, has_bias],
        )
        if input_grad and padded is not x:  # the uneven padding was applied here: cut it off again
            dx = dx[(..., *(slice(lo, lo + n) for (lo, _), n in zip(pads, x.shape[2:])))]
        return dx, dw, db

    def conv_transpose(
        self,
        x: Any,
        weight: Any,
        bias: Any,
        stride: tuple[int, ...],
        padding: tuple[int, ...],
        output_padding: tuple[int, ...],
        dilation: tuple[int, ...],
        groups: int,
    ) -> tuple[Any, Any]:
        """``torch.nn.functional.conv_transpose1d``/``conv_transpose2d``; the backward keeps the input."""
        functional = self.library.nn.functional
        fn = functional.conv_transpose1d if x.ndim == 3 else functional.conv_transpose2d
        return fn(x, weight, bias, list(stride), list(padding), list(output_padding), groups, list(dilation)), x

    def conv_transpose_backward(
        self,
        grad: Any,
        saved: Any,
        weight: Any,
        has_bias: bool,
        stride: tuple[int, ...],
        padding: tuple[int, ...],
        output_padding: tuple[int, ...],
        dilation: tuple[int, ...],
        groups: int,
        input_grad: bool,
    ) -> tuple[Any, Any, Any]:
        """``aten.convolution_backward`` with ``transposed=True``: PyTorch's own three gradients."""
        return self.library.ops.aten.convolution_backward(
            grad.contiguous(),
            saved,
            weight,
            [weight.shape[1] * groups] if has_bias else None,
            list(stride),
            list(padding),
            list(dilation),
            True,
            list(output_padding),
            groups,
            [input_grad, True, has_bias],
        )

    # pooling: ATen's kernels, 1-d as 2-d with a height of 1. One difference from the windows of
    # nu_xp.layers.pooling: a window holding a NaN sends its gradient to the NaN (as PyTorch does)
    native_pool = True

    @staticmethod
    def _as_2d(x: Any, kernel: Any, stride: Any, padding: Any) -> tuple[Any, list, list, list]:
        if x.ndim == 4:
            return x, list(kernel), list(stride), list(padding)
        return x.unsqueeze(2), [1, *kernel], [1, *stride], [0, *padding]

    def max_pool(
        self, x: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> tuple[Any, Any]:
        """``aten.max_pool2d_with_indices``; the backward keeps the input and the indices."""
        x2, k, s, p = self._as_2d(x, kernel, stride, padding)
        y, indices = self.library.ops.aten.max_pool2d_with_indices(x2, k, s, p, [1, 1], False)
        return (y if x.ndim == 4 else y.squeeze(2)), (x, indices)

    def max_pool_backward(
        self, grad: Any, saved: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> Any:
        """``aten.max_pool2d_with_indices_backward``."""
        x, indices = saved
        x2, k, s, p = self._as_2d(x, kernel, stride, padding)
        if x.ndim == 3:
            grad = grad.unsqueeze(2)
        dx = self.library.ops.aten.max_pool2d_with_indices_backward(grad, x2, k, s, p, [1, 1], False, indices)
        return dx if x.ndim == 4 else dx.squeeze(2)

    def avg_pool(
        self, x: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> tuple[Any, Any]:
        """``aten.avg_pool2d`` with ``count_include_pad=True``; the backward keeps the input."""
        x2, k, s, p = self._as_2d(x, kernel, stride, padding)
        y = self.library.ops.aten.avg_pool2d(x2, k, s, p, False, True, None)
        return (y if x.ndim == 4 else y.squeeze(2)), x

    def avg_pool_backward(
        self, grad: Any, saved: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> Any:
        """``aten.avg_pool2d_backward``."""
        x = saved
        x2, k, s, p = self._as_2d(x, kernel, stride, padding)
        g2 = grad if x.ndim == 4 else grad.unsqueeze(2)
        dx = self.library.ops.aten.avg_pool2d_backward(g2, x2, k, s, p, False, True, None)
        return dx if x.ndim == 4 else dx.squeeze(2)

    # the LSTM: oneDNN's own loop (aten.mkldnn_rnn_layer and its backward, what torch.nn.LSTM runs on the CPU)
    native_lstm = True
    _LSTM = 2  # the LSTM's number in ATen's enum of recurrent modes

    def lstm_supports(self, x: Any) -> bool:
        """float32 on the CPU with oneDNN enabled, outside ``torch.inference_mode`` (elsewhere the layer steps
        ``LSTMCell``, as PyTorch's own non-oneDNN path would)."""
        torch = self.library
        return (
            x.dtype == torch.float32
            and x.device.type == "cpu"
            and x.numel() > 0
            and not torch.is_inference_mode_enabled()  # there oneDNN keeps no workspace for a backward
            and torch.backends.mkldnn.is_available()
            and torch._C._get_mkldnn_enabled()
        )

    def lstm(
        self, x: Any, w_ih: Any, w_hh: Any, bias: Any, h0: Any, c0: Any, reverse: bool
    ) -> tuple[Any, Any, Any, Any]:
        """``aten.mkldnn_rnn_layer``; the backward keeps its inputs, results and oneDNN's workspace."""
        torch = self.library
        b_ih = bias if bias is not None else torch.zeros(w_ih.shape[0], dtype=x.dtype)
        b_hh = torch.zeros_like(b_ih)
        x, h0, c0 = x.contiguous(), h0.contiguous(), c0.contiguous()
        with torch.enable_grad():  # oneDNN hands out its workspace only with grad mode on (nothing requires grad)
            out, h, c, work = torch.ops.aten.mkldnn_rnn_layer(
                x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, [], self._LSTM, w_hh.shape[1], 1, True, False, False, True
            )
        return out, h, c, (x, w_ih, w_hh, b_ih, b_hh, h0, c0, out, h, c, work, reverse, bias is not None)

    def lstm_backward(
        self, saved: Any, g_out: Any, dh: Any, dc: Any, input_grad: bool
    ) -> tuple[Any, Any, Any, Any, Any, Any]:
        """``aten.mkldnn_rnn_layer_backward``: the input's, weights' and initial state's gradients in one call."""
        x, w_ih, w_hh, b_ih, b_hh, h0, c0, out, h, c, work, reverse, has_bias = saved
        if g_out is None:
            g_out = self.library.zeros_like(out)
        dx, dw_ih, dw_hh, db, _, dh0, dc0 = self.library.ops.aten.mkldnn_rnn_layer_backward(
            x, w_ih, w_hh, b_ih, b_hh, h0, c0, out, h, c, g_out.contiguous(),
            None if dh is None else dh.contiguous(), None if dc is None else dc.contiguous(),
            reverse, self._LSTM, w_hh.shape[1], 1, True, True, False, [], False, work,
        )  # fmt: skip
        return (dx if input_grad else None), dw_ih, dw_hh, (db if has_bias else None), dh0, dc0

    # im2col and col2im as one gather and one scatter-add: on a GPU each of the K slice copies would be a launch
    pad = Ops.pad_by_writing  # one allocation and one copy instead of a concat per axis
    stack_taps = Ops.stack_taps_by_gather
    add_taps = Ops.add_taps_by_scatter
