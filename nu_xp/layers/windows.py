"""Sliding windows over the spatial axes of ``(N, C, *spatial)`` arrays, shared by convolution and pooling.

The standard has no convolution and no window view, so a window is built
from slicing: a kernel of ``K`` taps (``K = prod(kernel_size)``) becomes ``K``
strided slices of the padded input, one per tap ``(i, j)``::

    tap_ij = x_pad[:, :, i·d : i·d + s·(H_out - 1) + 1 : s,  j·d : … : s]     (shape (N, C, H_out, W_out))

so that ``tap_ij[n, c, h, w] = x_pad[n, c, h·s + i·d, w·s + j·d]``: the
``(i, j)`` element of every window at once. Stacking the taps gives the
"im2col" matrix; the gradient goes back by adding each tap's gradient into
the same slice of a zero array ("col2im"). Cost: ``K`` slice copies of the
output's size in each direction, on top of the GEMM.

This module holds the geometry only (sizes, padding, the taps' slices). The
array work is done by the window kernels of [`nu_xp.backends.Ops`][nu_xp.backends.ops.Ops]
(``pad``, ``stack_taps`` = im2col, ``add_taps`` = col2im), which a backend
may override with a faster or write-free version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backends.taps import offsets_on_data, output_shape, tap_slices

__all__ = ["as_tuple", "offsets_on_data", "output_shape", "resolve_padding", "tap_slices", "unpad"]


def as_tuple(value: Any, nd: int, name: str, layer: str, *, minimum: int = 1) -> tuple[int, ...]:
    """An int or a sequence of ``nd`` ints (each ≥ ``minimum``) as a tuple; ``ValueError``/``TypeError`` naming it."""
    items = [value] * nd if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if not isinstance(items, Sequence) or isinstance(items, str) or len(items) != nd:
        raise TypeError(f"{layer}: {name} must be an int or {nd} ints, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{layer}: {name} must hold integers, got {value!r}")
        if v < minimum:
            raise ValueError(f"{layer}: {name} must be ≥ {minimum}, got {value!r}")
        out.append(int(v))
    return tuple(out)


def resolve_padding(
    padding: Any, nd: int, kernel: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...], layer: str
) -> tuple[tuple[int, int], ...]:
    """``(left, right)`` zero padding per spatial axis for an int, ``nd`` ints, ``"valid"`` or ``"same"``.

    ``"same"`` (stride 1 only, as PyTorch) pads ``d·(k - 1)`` in total, the
    odd element on the right, so the output keeps the input's size.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{layer}: padding='same' needs stride 1 (as PyTorch), got stride={stride}")
            totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(f"{layer}: padding must be an int, {nd} ints, 'same' or 'valid', got {padding!r}")
    return tuple((p, p) for p in as_tuple(padding, nd, "padding", layer, minimum=0))


def unpad(x: Any, padding: tuple[tuple[int, int], ...]) -> Any:
    """The interior of a padded ``(A, B, *padded)`` array (``x`` itself without padding)."""
    if all(lo == 0 and hi == 0 for lo, hi in padding):
        return x
    spatial = tuple(n - lo - hi for n, (lo, hi) in zip(x.shape[2:], padding))
    return x[_interior(spatial, padding)]


def _interior(spatial: tuple[int, ...], padding: tuple[tuple[int, int], ...]) -> tuple[slice, ...]:
    return (slice(None), slice(None), *(slice(lo, lo + n) for n, (lo, _) in zip(spatial, padding)))


def num_taps(kernel: tuple[int, ...]) -> int:
    """``prod(kernel)``."""
    return math.prod(kernel)
