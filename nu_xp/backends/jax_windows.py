"""JAX's own windows where XLA's CPU kernels are slow: max pooling, and convolutions of one input channel.

Both read the input as ``K`` strided slices of the padded input (the taps of
[`nu_xp.backends.taps`][nu_xp.backends.taps], one per kernel position), which
XLA fuses into the loop that consumes them; the transpose of a slice is a pad,
so the backward, ``jax.vjp`` of the slicing, is a sum of padded arrays that XLA
fuses too. No gather, no scatter.

* **max pooling**: ``y = max_k tap_k``, the winner ``w = argmax_k tap_k``
  (the first of ties, as PyTorch and the reference); ``dL/dx = Σ_k pad_k(g ⊙
  [w = k])``. XLA's own (``reduce_window``, whose gradient is a
  select-and-scatter) took 3.2 ms for LeNet-5's first pool forward and
  backward on the 2-core benchmark machine, this 1.25 ms.
* **convolution with one input channel** (``groups = 1``): im2col by slices and
  one product, ``y[n, o] = Σ_k W[o, k] tap_k[n]``; ``dL/dW[o, k] = Σ g[n, o]
  tap_k[n]``. XLA's CPU convolution contracts over the single channel poorly:
  LeNet-5's first layer (28 × 28, 6 kernels of 5 × 5, batch 128) took 5.8 ms
  for its forward and weight gradient there, this 3.5 ms. With more input
  channels XLA's convolution is as fast or faster, and stays. A 2-D one of
  stride 1 goes faster still by space-to-depth
  ([`nu_xp.backends.jax_blocks`][nu_xp.backends.jax_blocks]); this is the general path.

Each function is ``jax.jit``-compiled per geometry (the static arguments):
eagerly it is one dispatch, inside a compiled step XLA inlines it. JAX is
imported at the first call, so the module itself imports without it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from .taps import offsets_on_data, output_shape, tap_slices

__all__ = ["conv_by_taps", "max_pool", "max_pool_backward"]

Pads = tuple[tuple[int, int], ...]


@functools.cache
def _jax() -> tuple[Any, Any]:
    """``(jax, jax.numpy)``, imported on first use."""
    import jax
    import jax.numpy as jnp

    return jax, jnp


def _compiled(*static: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``jax.jit(fn, static_argnums=static)``, made at the first call."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.cache
        def jitted() -> Any:
            return _jax()[0].jit(fn, static_argnums=static)

        @functools.wraps(fn)
        def call(*args: Any) -> Any:
            return jitted()(*args)

        return call

    return wrap


def _stacked(x: Any, taps: list[tuple[slice, ...]], pads: Pads, value: float) -> Any:
    """``(K, N, C, *out)``: tap ``k``'s strided slice of ``x`` padded with ``value``."""
    jnp = _jax()[1]
    padded = jnp.pad(x, ((0, 0), (0, 0), *pads), constant_values=value)
    return jnp.stack([padded[t] for t in taps])


def _pool_taps(
    shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
) -> tuple[list[tuple[slice, ...]], Pads]:
    """The taps that read data (padding-only ones never win a maximum) and the pads, for an input of ``shape``."""
    pads = tuple((p, p) for p in padding)
    ones = (1,) * len(kernel)
    out = output_shape(tuple(shape[2:]), kernel, stride, pads, ones, "max pooling")
    offsets = offsets_on_data(kernel, stride, out, tuple(shape[2:]), pads)
    return tap_slices(kernel, stride, ones, out, offsets), pads


@_compiled(1, 2, 3)
def max_pool(x: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]) -> tuple[Any, Any]:
    """``(y, winner)``: each window's maximum (``-inf`` padding) and the index of its first maximal tap."""
    jnp = _jax()[1]
    taps, pads = _pool_taps(tuple(x.shape), kernel, stride, padding)
    stacked = _stacked(x, taps, pads, -math.inf)
    winner = jnp.argmax(stacked, axis=0).astype(jnp.int8 if len(taps) < 128 else jnp.int32)
    return jnp.max(stacked, axis=0), winner


@_compiled(2, 3, 4, 5)
def max_pool_backward(
    grad: Any,
    winner: Any,
    shape: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
) -> Any:
    """``dL/dx``: each window's gradient at its winning tap, the taps' slices transposed (pads) and summed."""
    jax, jnp = _jax()
    taps, pads = _pool_taps(shape, kernel, stride, padding)
    chosen = jnp.arange(len(taps), dtype=winner.dtype).reshape((-1,) + (1,) * winner.ndim) == winner
    parts = jnp.where(chosen, grad, jnp.zeros((), grad.dtype))
    _, spread = jax.vjp(lambda x: _stacked(x, taps, pads, 0.0), jnp.zeros(shape, grad.dtype))
    return spread(parts)[0]


@_compiled(2, 3, 4)
def conv_by_taps(x: Any, weight: Any, stride: tuple[int, ...], pads: Pads, dilation: tuple[int, ...]) -> Any:
    """``y[n, o, …] = Σ_{c,k} W[o, c, k] tap_k[n, c, …]`` (``groups = 1``, no bias): im2col by slices, one product."""
    jnp = _jax()[1]
    kernel = tuple(weight.shape[2:])
    out = output_shape(tuple(x.shape[2:]), kernel, stride, pads, dilation, "convolution")
    cols = _stacked(x, tap_slices(kernel, stride, dilation, out), pads, 0.0)  # (K, N, C, *out)
    w = jnp.reshape(weight, (weight.shape[0], weight.shape[1], -1))  # (O, C, K)
    return jnp.einsum("knc...,ock->no...", cols, w)
