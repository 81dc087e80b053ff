"""The ``"jax"`` backend: ``jax.numpy`` arrays on a CPU, GPU or TPU — immutable.

``jax.numpy`` is an array-API namespace of its own (no compat wrapper). Its
arrays cannot be written in place, so nu_xp never does: optimizers rebind
``p.data`` ([`nu_xp.backends.is_writeable`][nu_xp.backends.arrays.is_writeable] says False), padding is the
write-free ``concat`` of [`Ops.pad`][nu_xp.backends.ops.Ops.pad], and col2im is a scatter-add
([`Ops.add_taps_by_scatter`][nu_xp.backends.ops.Ops.add_taps_by_scatter] through
[`index_add`][nu_xp.backends.ops.Ops.index_add], here
``table.at[indices].add(values)``). ``erf`` is ``jax.scipy.special.erf``.
Convolutions are XLA's, but max pooling and (on the CPU) a convolution of
one input channel are strided slices XLA fuses
([`nu_xp.backends.jax_windows`][nu_xp.backends.jax_windows]), or for a 2-D one of
stride 1 a convolution of ``2 × 2`` blocks regrouped into channels
([`nu_xp.backends.jax_blocks`][nu_xp.backends.jax_blocks]).

JAX computes in float32 unless its 64-bit mode is on, and then silently
hands back float32 for a float64 request: [`check_dtype`][nu_xp.backends.ops.Ops.check_dtype] refuses
``dtype="float64"`` without it, saying how to enable it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import array_api_compat
import numpy as np

from . import jax_blocks, jax_windows
from .host_memory import keep_large_blocks
from .ops import Ops

__all__ = ["JaxOps"]


class JaxOps(Ops):
    """JAX: immutable arrays, scatter-add through ``.at[].add``, devices from ``jax.devices()``."""

    name: ClassVar[str] = "jax"
    modules: ClassVar[tuple[str, ...]] = ("jax", "jax.numpy")
    namespace_module: ClassVar[str] = "jax.numpy"
    package: ClassVar[str] = "jax"
    extra: ClassVar[str] = "jax"
    array_noun: ClassVar[str] = "a jax array"

    @classmethod
    def is_array(cls, x: Any) -> bool:
        return array_api_compat.is_jax_array(x)

    def check_dtype(self, dtype: str) -> None:
        """``ValueError`` for float64 while JAX's 64-bit mode is off (JAX would silently use float32)."""
        if dtype == "float64" and not self.library.config.read("jax_enable_x64"):
            raise ValueError(
                "dtype='float64' on the 'jax' backend needs JAX's 64-bit mode, which is off (JAX would silently "
                "compute in float32); enable it before creating arrays with "
                "jax.config.update('jax_enable_x64', True) or the environment variable JAX_ENABLE_X64=1, "
                "or use dtype='float32'"
            )

    # ------------------------------------------------------------------ devices
    def default_device(self) -> Any:
        return self.library.devices()[0]

    def resolve_device(self, device: Any) -> Any:
        """``None`` (the default device), a ``jax.Device``, or text: ``"cpu"``, ``"gpu"``/``"cuda"``, ``"gpu:1"``."""
        jax = self.library
        if device is None:
            return self.default_device()
        if not isinstance(device, str):
            return device
        platform, _, index = device.lower().partition(":")
        platform = {"cuda": "gpu", "rocm": "gpu"}.get(platform, platform)
        try:
            devices = jax.devices(platform)
        except RuntimeError as exc:
            raise RuntimeError(f"device={device!r}: JAX has no {platform!r} device here ({exc})") from None
        return devices[int(index) if index else 0]

    def device_key(self, device: Any) -> Any:
        if device is None or isinstance(device, (str, int)):
            return device
        return f"{device.platform}:{device.id}"

    def device_name(self, device: Any) -> str:
        return f"{device.platform}:{device.id}" if hasattr(device, "platform") else str(device)

    compiles: ClassVar[bool] = True

    def compile(self, fn: Any, donate: tuple[int, ...] = ()) -> Any:
        """``jax.jit(fn)``; inputs donated only off the CPU (XLA's CPU client cannot reuse them, and warns).

        On the CPU, XLA takes a program's temporaries as one block per run, mapped afresh by glibc when it
        exceeds 32 MB: [`keep_large_blocks`][nu_xp.backends.host_memory.keep_large_blocks] lets the next
        run reuse its pages (a 2-block GPT's step: 15 000 page faults fewer, 55 → 42-49 ms).
        """
        on_cpu = self._on_cpu()
        if on_cpu:
            keep_large_blocks()
        return self.library.jit(fn, donate_argnums=() if on_cpu else donate)

    def _on_cpu(self) -> bool:
        """Whether JAX computes on the CPU here (its default device: a traced value has no device of its own)."""
        return self.default_device().platform == "cpu"

    def abstract_run(self, fn: Any, *args: Any) -> Any:
        """``jax.eval_shape``."""
        return self.library.eval_shape(fn, *args)

    def wait(self, x: Any) -> Any:
        return x.block_until_ready()

    structured_loops: ClassVar[bool] = True

    def scan(self, step: Any, carry: Any, xs: tuple[Any, ...], *, reverse: bool = False) -> tuple[Any, Any]:
        """``jax.lax.scan``: the body is traced once, whatever the number of steps (see [`Ops.scan`][])."""
        return self.library.lax.scan(step, carry, xs, reverse=reverse)

    def is_traced(self, x: Any) -> bool:
        """A ``jax.core.Tracer``: a placeholder while ``jax.jit`` traces (see [`nu_xp.compile_step`][])."""
        return isinstance(x, self.library.core.Tracer)

    def device_of(self, x: Any) -> Any:
        """The array's device; None for a traced value inside ``jax.jit`` (it has none: the compiled step places it)."""
        try:
            return x.device
        except AttributeError:
            return None

    def is_host(self, device: Any) -> bool:
        return getattr(device, "platform", "cpu") == "cpu"

    def synchronize(self, device: Any) -> None:
        self.library.effects_barrier()

    # ------------------------------------------------------------------ host transfers
    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def asarray(self, a: Any, dtype: Any = None, device: Any = None) -> Any:
        """``jax.device_put(jnp.asarray(a, dtype), device)``."""
        arr = self.xp.asarray(a, dtype=dtype)
        return arr if device is None else self.library.device_put(arr, device)

    # ------------------------------------------------------------------ kernels
    def erf(self, x: Any) -> Any:
        """``jax.scipy.special.erf`` (native)."""
        from jax.scipy.special import erf

        return erf(x)

    def index_add(self, table: Any, indices: Any, values: Any) -> Any:
        """``table.at[indices].add(values)``: JAX's scatter-add (a new array; repeats add up)."""
        return table.at[indices].add(values)

    # col2im without writing into an array: one scatter-add
    add_taps = Ops.add_taps_by_scatter

    # convolution: XLA's own (lax.conv_general_dilated), its gradients XLA's transposed convolutions through
    # jax.vjp; im2col's gathers and col2im's scatter-add made LeNet-5's compiled step 2.6x NumPy's on the CPU
    # (1.9x with XLA's convolution, then XLA's pooling too: benchmarks/RESULTS.md).
    # The transposed convolution keeps the layer's formula (Ops.native_conv_transpose stays False).
    native_conv = True

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
        """``lax.conv_general_dilated``, or on the CPU for one input channel a convolution XLA runs well: 2-D with
        stride 1 by space-to-depth ([`conv_by_blocks`][nu_xp.backends.jax_blocks.conv_by_blocks]), else im2col by
        slices ([`conv_by_taps`][nu_xp.backends.jax_windows.conv_by_taps]); what the backward keeps is the
        ``jax.vjp`` of that product."""
        lax = self.library.lax
        layout = ("NCH", "OIH", "NCH") if x.ndim == 3 else ("NCHW", "OIHW", "NCHW")
        geometry = (tuple(stride), tuple(tuple(p) for p in pads), tuple(dilation))
        by_taps = groups == 1 and x.shape[1] == 1 and self._on_cpu()
        by_blocks = by_taps and jax_blocks.takes_blocks(x.ndim, geometry[0], geometry[2])

        def product(x: Any, w: Any) -> Any:
            if by_blocks:
                return jax_blocks.conv_by_blocks(x, w, geometry[1])
            if by_taps:
                return jax_windows.conv_by_taps(x, w, *geometry)
            return lax.conv_general_dilated(
                x,
                w,
                window_strides=geometry[0],
                padding=geometry[1],
                rhs_dilation=geometry[2],
                dimension_numbers=layout,
                feature_group_count=groups,
            )

        y, pullback = self.library.vjp(product, x, weight)
        if bias is not None:
            y = y + self.xp.reshape(bias, (1, -1, *([1] * (x.ndim - 2))))
        return y, pullback

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
        """The pullback of [`conv`][nu_xp.backends.jax_ops.JaxOps.conv]: ``(dL/dx, dL/dW)``, and ``dL/db = Σ g``."""
        dx, dw = saved(grad)
        db = self.xp.sum(grad, axis=(0, *range(2, grad.ndim))) if has_bias else None
        return (dx if input_grad else None), dw, db

    # pooling: max pooling by strided slices (jax_windows: XLA's select-and-scatter gradient of reduce_window is
    # slow on the CPU); average pooling XLA's reduce_window, its gradient through jax.vjp
    native_pool = True

    def max_pool(
        self, x: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> tuple[Any, Any]:
        """The maximum over the taps (``-inf`` padding), the first maximal tap kept
        ([`jax_windows.max_pool`][nu_xp.backends.jax_windows.max_pool])."""
        y, winner = jax_windows.max_pool(x, tuple(kernel), tuple(stride), tuple(padding))
        return y, (winner, tuple(x.shape))

    def max_pool_backward(
        self, grad: Any, saved: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> Any:
        """Each window's gradient at its winning tap."""
        winner, shape = saved
        return jax_windows.max_pool_backward(grad, winner, shape, tuple(kernel), tuple(stride), tuple(padding))

    def avg_pool(
        self, x: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> tuple[Any, Any]:
        """The windows' sums (``lax.reduce_window`` with ``add``) over ``prod(kernel)``, padding counted; the
        backward keeps the sum's pullback (``jax.vjp``)."""
        lax = self.library.lax
        zero = np.array(0.0, dtype=x.dtype)  # a concrete identity: JAX then uses its differentiable add windows
        pads = [(0, 0), (0, 0), *((p, p) for p in padding)]

        def window(x: Any) -> Any:
            return lax.reduce_window(x, zero, lax.add, (1, 1, *kernel), (1, 1, *stride), pads)

        total, pullback = self.library.vjp(window, x)
        return total / float(np.prod(kernel)), pullback

    def avg_pool_backward(
        self, grad: Any, saved: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> Any:
        """The pullback of the sum, ``g / prod(kernel)`` to every position of each window."""
        return saved(grad / float(np.prod(kernel)))[0]
