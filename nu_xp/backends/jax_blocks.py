"""One-input-channel 2-D convolutions on JAX by space-to-depth: the same sums as a convolution XLA runs well.

XLA's CPU convolution contracts over a single input channel poorly (LeNet-5's
first layer: 5.8 ms for its forward and weight gradient on the 2-core
benchmark machine), and im2col by slices ([`conv_by_taps`][nu_xp.backends.jax_windows.conv_by_taps])
writes its ``k²`` taps (10 MB there) once as slices, once stacked and once
transposed for the weight gradient's product (4.0 ms). Here, for stride 1 and
dilation 1, each ``B × B`` block of the padded input (``B = 2``) becomes ``B²``
channels, and the ``k_h × k_w`` kernel a ``k'_h × k'_w`` kernel over them with
``O B²`` outputs, one per kernel and position in an output block
(``k' = ⌊(k + B - 2)/B⌋ + 1``: 3 for 5)::

    xs[n, p, q, (a, b)]           = x_pad[n, B p + a, B q + b]
    K[u, v, (a, b), (o, c, d)]    = W[o, B u + a - c, B v + b - d]     (0 outside the kernel)
    y[n, o, B p + c, B q + d]     = Σ_{u, v, a, b} K[u, v, (a, b), (o, c, d)] xs[n, p + u, q + v, (a, b)]

a valid convolution of ``B²`` channels, channels last, which XLA's CPU
convolution runs well; the output blocks are put back in place and cropped.
``K = W Sᵀ`` for a 0/1 matrix ``S`` that says which kernel tap each entry of
``K`` holds, so the weight gradient is ``dW = dK S`` with ``dK = colsᵀ G``: the
``k'²`` taps of ``xs`` (``k²/k'²``-fold fewer numbers than im2col's ``k²``: 3.6
MB instead of 10 for LeNet-5's first layer) times the output gradient regrouped
the same way, one product. ``dL/dx`` is the pullback of the forward (``jax.vjp``; XLA drops it
where nothing reads it, as for a model's first layer). LeNet-5's first layer
takes 2.7-3.1 ms for its forward and weight gradient instead of 3.9-4.3 by
taps, its compiled training step 0.84-0.89× (paired, same machine).

JAX is imported at the first call, so the module itself imports without it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .jax_windows import Pads, _jax

__all__ = ["conv_by_blocks", "takes_blocks"]

#: the side of the blocks regrouped into channels
B = 2


def takes_blocks(x_ndim: int, stride: tuple[int, ...], dilation: tuple[int, ...]) -> bool:
    """Whether [`conv_by_blocks`][] computes this convolution: 2-D, stride 1, dilation 1 (one input channel,
    one group: the caller's condition)."""
    return x_ndim == 4 and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)


@functools.lru_cache(maxsize=64)
def _taps_of_blocks(kh: int, kw: int) -> tuple[int, int, np.ndarray]:
    """``(k'_h, k'_w, S)``: ``S[m, i k_w + j] = 1`` where entry ``m = (u, v, a, b, c, d)`` of the block kernel
    holds ``W[·, i, j]`` (``i = B u + a - c``, ``j = B v + b - d``), a constant of the geometry (host numbers)."""
    kbh, kbw = (kh + B - 2) // B + 1, (kw + B - 2) // B + 1
    u, v, a, b, c, d = np.indices((kbh, kbw, B, B, B, B)).reshape(6, -1)
    i, j = B * u + a - c, B * v + b - d
    inside = (0 <= i) & (i < kh) & (0 <= j) & (j < kw)
    select = np.zeros((u.size, kh * kw))
    select[np.flatnonzero(inside), (i * kw + j)[inside]] = 1.0
    return kbh, kbw, select


def _geometry(shape: tuple[int, ...], kernel: tuple[int, ...], pads: Pads) -> tuple[int, ...]:
    """``(H_out, W_out, output blocks down and across, padded height and width in whole blocks)``."""
    h, w = shape[2:]
    (top, bottom), (left, right) = pads
    out_h, out_w = h + top + bottom - kernel[0] + 1, w + left + right - kernel[1] + 1
    kbh, kbw, _ = _taps_of_blocks(*kernel)
    blocks_h, blocks_w = -(-out_h // B), -(-out_w // B)
    return out_h, out_w, blocks_h, blocks_w, B * (blocks_h + kbh - 1), B * (blocks_w + kbw - 1)


def _forward(x: Any, weight: Any, pads: Pads) -> tuple[Any, Any]:
    """``(y, xs)``: the convolution and the input regrouped into blocks, ``(N, padded_h/B, padded_w/B, B²)``."""
    jnp, lax = _jax()[1], _jax()[0].lax
    n, o = x.shape[0], weight.shape[0]
    kh, kw = weight.shape[2:]
    out_h, out_w, blocks_h, blocks_w, padded_h, padded_w = _geometry(tuple(x.shape), (kh, kw), pads)
    kbh, kbw, select = _taps_of_blocks(kh, kw)
    (top, _), (left, _) = pads
    h, w = x.shape[2:]
    x_pad = jnp.pad(x[:, 0], ((0, 0), (top, padded_h - h - top), (left, padded_w - w - left)))
    xs = x_pad.reshape(n, padded_h // B, B, padded_w // B, B).transpose(0, 1, 3, 2, 4)
    xs = xs.reshape(n, padded_h // B, padded_w // B, B * B)
    k = jnp.reshape(weight, (o, kh * kw)) @ jnp.asarray(select.T, weight.dtype)  # (O, u·v·a·b·c·d)
    k = k.reshape(o, kbh, kbw, B * B, B, B).transpose(1, 2, 3, 0, 4, 5).reshape(kbh, kbw, B * B, o * B * B)
    ys = lax.conv_general_dilated(xs, k, (1, 1), ((0, 0), (0, 0)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = ys.reshape(n, blocks_h, blocks_w, o, B, B).transpose(0, 3, 1, 4, 2, 5)
    return y.reshape(n, o, blocks_h * B, blocks_w * B)[:, :, :out_h, :out_w], xs


def _backward(pads: Pads, kept: tuple[Any, Any, Any], g: Any) -> tuple[Any, Any]:
    """``(dL/dx, dL/dW)``: ``dW = (colsᵀ G_s) S`` over the block taps; ``dL/dx`` the forward's pullback."""
    jax, jnp = _jax()
    x, xs, weight = kept
    n, o = g.shape[:2]
    kh, kw = weight.shape[2:]
    out_h, out_w, blocks_h, blocks_w, _, _ = _geometry(tuple(x.shape), (kh, kw), pads)
    kbh, kbw, select = _taps_of_blocks(kh, kw)
    g_pad = jnp.pad(g, ((0, 0), (0, 0), (0, blocks_h * B - out_h), (0, blocks_w * B - out_w)))
    g_s = g_pad.reshape(n, o, blocks_h, B, blocks_w, B).transpose(0, 2, 4, 1, 3, 5)
    g_s = g_s.reshape(n * blocks_h * blocks_w, o * B * B)  # (positions, (o, c, d))
    taps = [xs[:, u : u + blocks_h, v : v + blocks_w, :] for u in range(kbh) for v in range(kbw)]
    cols = jnp.stack(taps, axis=-2).reshape(n * blocks_h * blocks_w, kbh * kbw * B * B)  # ((u, v, a, b))
    d_k = (cols.T @ g_s).reshape(kbh, kbw, B * B, o, B, B).transpose(3, 0, 1, 2, 4, 5).reshape(o, -1)
    d_w = (d_k @ jnp.asarray(select, g.dtype)).reshape(weight.shape)
    _, pullback = jax.vjp(lambda a: _forward(a, weight, pads)[0], x)
    return pullback(g)[0], d_w


@functools.cache
def _compiled_conv() -> Any:
    """The convolution with its backward (``jax.custom_vjp``), ``jax.jit``-compiled per geometry."""
    jax = _jax()[0]

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
    def conv(x: Any, weight: Any, pads: Pads) -> Any:
        return _forward(x, weight, pads)[0]

    def forward(x: Any, weight: Any, pads: Pads) -> tuple[Any, Any]:
        y, xs = _forward(x, weight, pads)
        return y, (x, xs, weight)

    conv.defvjp(forward, _backward)
    return jax.jit(conv, static_argnums=(2,))


def conv_by_blocks(x: Any, weight: Any, pads: Sequence[Sequence[int]]) -> Any:
    """``y[n, o, i, j] = Σ_{p, q} W[o, 0, p, q] x_pad[n, 0, i + p, j + q]`` (one input channel, stride 1, no bias)
    by space-to-depth; differentiable (``jax.vjp``) in ``x`` and ``weight``."""
    return _compiled_conv()(x, weight, tuple((int(lo), int(hi)) for lo, hi in pads))
