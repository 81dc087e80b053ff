"""NumPy's own row normalizations: LayerNorm and the attention's softmax, the formulas of ``Ops`` on rows, in place.

The reference (every other backend runs it, and the tests compare against it)
makes a new array for each of its operations. Here the normalized axes are
flattened into rows of ``m`` numbers, and every operation after the first
writes into arrays it owns::

    μ = Σ x / m,   x̂ = x - μ,   r = 1/√(x̂ · x̂ / m + ε),   x̂ ← x̂ r,   y = γ x̂ + β

    dγ = Σ_rows g x̂,   dβ = Σ_rows g,   ĝ = g γ
    dx = (ĝ - Σ ĝ / m - x̂ (ĝ · x̂) / m) r

Sums along a row are matrix-vector products (``Σ x``, ``Σ ĝ``; BLAS's
accumulation, as in every product of nu_xp) and dot products of two rows
(``x̂ · x̂``, ``ĝ · x̂``: ``numpy.vecdot``, BLAS's ``dot``, without the
product written out); ``dγ`` is ``einsum``'s sum of products down the
columns, also without it. A LayerNorm step of a small GPT (2048 rows of 128,
float32) takes ~0.85 ms instead of 1.45 (the 2-core benchmark machine).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

__all__ = ["LayerNormKept", "column_sums", "layer_norm", "layer_norm_backward", "masked_softmax", "softmax_backward"]


class LayerNormKept(NamedTuple):
    """What the forward keeps: ``x̂`` as rows ``(rows, m)`` and ``r = 1/√(σ² + ε)`` as ``(rows, 1)``."""

    x_hat: np.ndarray
    inv_std: np.ndarray


def layer_norm(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, dims: int, eps: float
) -> tuple[np.ndarray, LayerNormKept]:
    """``(y, kept)`` over the last ``dims`` axes of ``x`` (``weight``/``bias`` of those axes' shape, or None)."""
    m = math.prod(x.shape[x.ndim - dims :])
    rows = np.reshape(x, (-1, m))
    average = np.full((m, 1), 1.0 / m, x.dtype)  # a row's mean is a product with it
    x_hat = rows - rows @ average
    inv_std = np.vecdot(x_hat, x_hat)[:, None]  # Σ (x - μ)², no square written out
    inv_std *= 1.0 / m
    inv_std += eps
    np.sqrt(inv_std, out=inv_std)
    np.divide(1.0, inv_std, out=inv_std)
    x_hat *= inv_std
    if weight is not None:
        y = np.multiply(x_hat, np.reshape(weight, (m,)))
        if bias is not None:
            y += np.reshape(bias, (m,))
    elif bias is not None:
        y = np.add(x_hat, np.reshape(bias, (m,)))
    else:
        y = x_hat.copy()  # x̂ is kept: the output is its own array
    return np.reshape(y, x.shape), LayerNormKept(x_hat, inv_std)


def layer_norm_backward(
    grad: np.ndarray, kept: LayerNormKept, weight: np.ndarray | None, dims: int, needs: tuple[bool, bool, bool]
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(dL/dx, dL/dγ, dL/dβ)``, None where ``needs`` (input, weight, bias) says so; ``grad`` is not written."""
    x_hat, inv_std = kept
    m = x_hat.shape[1]
    shape = tuple(grad.shape[grad.ndim - dims :])  # γ's and β's
    g = np.reshape(grad, x_hat.shape)
    d_x = d_weight = d_bias = None
    if needs[1]:
        d_weight = np.reshape(np.einsum("ij,ij->j", g, x_hat), shape)  # Σ_rows g x̂, no product written out
    if needs[2]:
        d_bias = np.reshape(column_sums(g), shape)
    if needs[0]:
        g_hat = np.multiply(g, np.reshape(weight, (m,))) if weight is not None else g.copy()
        mean_gx = np.vecdot(g_hat, x_hat)[:, None]  # ĝ · x̂ per row
        mean_gx *= 1.0 / m
        mean_g = g_hat @ np.full((m, 1), 1.0 / m, x_hat.dtype)
        g_hat -= mean_g
        product = np.multiply(x_hat, mean_gx)
        g_hat -= product
        g_hat *= inv_std
        d_x = np.reshape(g_hat, grad.shape)
    return d_x, d_weight, d_bias


_BLAS_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@functools.lru_cache(maxsize=64)
def _ones(n: int, dtype: Any) -> np.ndarray:
    """A read-only vector of ``n`` ones (made once per length and dtype)."""
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


def column_sums(a: np.ndarray) -> np.ndarray:
    """``Σ_i a[i, :]`` of a 2-D array (a bias's gradient): ``1ᵀ A`` with BLAS where its rows are contiguous
    float32/float64 numbers, else ``add.reduce`` (BLAS cannot read other strides). NumPy reduces down the
    columns one row at a time, a running sum as BLAS's, at 2.4× the time (0.19 against 0.08 ms for 2048 rows
    of 512)."""
    if a.flags.c_contiguous and a.dtype in _BLAS_FLOATS:
        return _ones(a.shape[0], a.dtype) @ a
    return np.add.reduce(a, axis=0)


def _row_sums(a: np.ndarray) -> np.ndarray:
    """``Σ_j a[..., j]`` kept as ``(..., 1)``: one matrix-vector product over every row."""
    width = a.shape[-1]
    if width == 0:
        return np.zeros((*a.shape[:-1], 1), a.dtype)
    return np.reshape(np.reshape(a, (-1, width)) @ _ones(width, a.dtype)[:, None], (*a.shape[:-1], 1))


#: a row whose exps, shifted by the bound on every score, sum below this was shifted too far: it is redone exactly
_TINY_TOTAL = 2.0**-72


def masked_softmax(scores: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """[`Ops.masked_softmax`][nu_xp.backends.ops.Ops.masked_softmax] of ``scores + mask`` with one new array.

    Softmax does not change when a row is shifted, and the reference shifts each
    row by its maximum, a reduction over rows of ``S`` numbers that NumPy runs
    one row at a time (0.55 ms for 8192 rows of 64, as long as the ``exp``).
    Here every row is shifted by one bound on all the scores, ``b = max(s) +
    max(M)`` (one pass over contiguous memory), folded into the mask (``M - b``,
    a small array), so ``s + M - b ≤ 0`` comes in one pass, ``exp`` and the
    division in place, the row sums a matrix-vector product. A row whose
    maximum lies far below ``b`` would lose its exps to underflow: a row summing
    below ``2⁻⁷²`` (its maximum at least 50 below ``b``; a row of ``-inf`` sums
    to 0) is redone with its own maximum. A NaN or infinite bound takes the
    per-row shift everywhere (a NaN in a row still makes the row NaN).
    """
    if scores.size == 0:  # no keys, or no rows
        return scores.copy() if mask is None else np.add(scores, mask)
    bound = float(np.max(scores)) + (0.0 if mask is None else float(np.max(mask)))
    with np.errstate(over="ignore"):  # a sum below the dtype's range is -inf, whose exp is 0: the limit
        if not math.isfinite(bound):
            return _row_shifted_softmax(scores if mask is None else np.add(scores, mask))
        if mask is None:
            e = np.subtract(scores, bound)
        else:
            e = np.add(scores, np.subtract(mask, bound, dtype=scores.dtype))
        np.exp(e, out=e)
        total = _row_sums(e)
        low = total[..., 0] < _TINY_TOTAL
        if low.any():  # rows shifted too far: their own maximum
            rows = np.broadcast_to(scores, e.shape)[low]
            e[low] = _row_shifted_softmax(rows if mask is None else rows + np.broadcast_to(mask, e.shape)[low])
            total[low] = 1.0
    e /= total
    return e


def _row_shifted_softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax with each row shifted by its own maximum (``fmax``: NumPy's ``maximum`` checks every pair for
    NaN, 0.69 against 0.49 ms for 8192 rows of 64); a row of ``-inf`` is shifted by 0 and gets zeros."""
    m = np.fmax.reduce(scores, axis=-1, keepdims=True)
    m[m == -np.inf] = 0.0  # a row with no finite score: shifted by nothing
    e = np.subtract(scores, m)
    np.exp(e, out=e)
    total = _row_sums(e)
    total[total == 0.0] = 1.0
    e /= total
    return e


def softmax_backward(p: np.ndarray, grad: np.ndarray, dot: np.ndarray | None = None) -> np.ndarray:
    """``p ⊙ (g - Σ_j g_j p_j)`` with one new array (the row sums a matrix-vector product, or ``dot`` given)."""
    if dot is None:
        out = np.multiply(grad, p)
        dot = _row_sums(out)
        np.subtract(grad, dot, out=out)
    else:
        out = np.subtract(grad, dot)
    out *= p
    return out
