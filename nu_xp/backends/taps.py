"""The geometry of a sliding window: its output size, and which strided slice of the padded input each tap reads.

A kernel of ``K = prod(kernel_size)`` taps over ``nd`` spatial axes reads, at
tap ``(i, j)`` (2-D), ``x_pad[..., i·d : i·d + s·(H_out - 1) + 1 : s, j·d : … : s]``:
the ``(i, j)`` element of every window at once. This is geometry only (no
arrays), shared by the layers' reference windows
([`nu_xp.layers.windows`][nu_xp.layers.windows]) and the backends' own
kernels ([`nu_xp.backends.numpy_windows`][nu_xp.backends.numpy_windows]).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

__all__ = ["offsets_on_data", "output_shape", "tap_slices"]


def output_shape(
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    layer: str,
) -> tuple[int, ...]:
    """``floor((n + left + right - d·(k - 1) - 1) / s) + 1`` per axis; ``ValueError`` when a kernel does not fit."""
    out = []
    for n, k, s, (lo, hi), d in zip(spatial, kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        if n + lo + hi < span:
            raise ValueError(
                f"{layer}: the kernel spans {span} (kernel_size {k}, dilation {d}) but the padded input has "
                f"only {n + lo + hi} along an axis (input spatial shape {spatial}, padding {padding})"
            )
        out.append((n + lo + hi - span) // s + 1)
    return tuple(out)


def tap_slices(
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    out: tuple[int, ...],
    offsets: list[Any] | None = None,
) -> list[tuple[slice, ...]]:
    """One index per kernel tap (C order over the kernel axes): ``(:, :, slice_1, …, slice_nd)``.

    ``offsets`` (one sequence per axis) keeps only those kernel offsets; default: all of ``range(k)``.
    """
    everything = (slice(None), slice(None))
    axes = offsets if offsets is not None else [range(k) for k in kernel]
    return [
        (*everything, *(slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in zip(taps, dilation, stride, out)))
        for taps in itertools.product(*axes)
    ]


def offsets_on_data(
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    out: tuple[int, ...],
    spatial: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
) -> list[Any]:
    """Per axis, the kernel offsets that read the input (not only padding) at one output position at least.

    Pooling skips the others: a padding tap never wins a max (it is -inf) and
    adds 0 to a sum, so leaving it out changes nothing but the cost, which
    then grows with the input, never with a kernel far larger than it
    (``MaxPool1d(3_000_000, padding=1_500_000)`` on 4 values reads 4 taps).
    Offset ``o`` reads padded position ``o + s·j`` at output ``j``; the data
    lies in ``[lo, lo + n)``.
    """
    kept = []
    for k, s, n_out, n, (lo, _) in zip(kernel, stride, out, spatial, padding):
        o = np.arange(k)
        j = np.maximum(0, -((o - lo) // s))  # the first output whose read position o + s·j is ≥ lo
        kept.append(o[(j < n_out) & (o + s * j < lo + n)].tolist())
    return kept
