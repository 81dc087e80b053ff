"""NumPy's own LSTM loop: the cell's formulas with the batch axis last, written into buffers made once.

The reference is [`LSTMCell`][nu_xp.layers.cells.LSTMCell]'s ``step`` and
``step_back`` (every other backend runs them, and the tests compare against
them). At the sizes of a character model (``N = 32``, ``H = 128``) that
reference spends as long on NumPy's bookkeeping as on arithmetic: ten new
arrays per step, and the gates ``i, f, g, o`` are column blocks of an
``N × 4H`` array, so each product of two of them walks 32 strided rows. Here
the batch axis is the last one: a step's pre-activation is a ``4H × N`` block,
each gate a contiguous ``H × N`` block of it, the recurrent product
``W_hh · h`` an ``(4H × H)(H × N)`` GEMM (OpenBLAS runs that shape about a
third faster than ``(N × H)(H × 4H)`` on the 2-core benchmark machine), and
every operation writes ``out=`` into arrays made once for the sequence, so a
step's data stays in the cache.

With ``s = (½, ½, 1, ½)`` per gate block and ``shift = (½, ½, 0, ½)``
(``σ(a) = ½ + ½ tanh(a/2)``), and the scale folded into the weights once
(``W̃ = s ⊙ W``), one step forward is::

    A[t] = W̃_ih x_t + s ⊙ b + W̃_hh h_{t-1}       (the input part of all steps first, bias as a column)
    A[t] = s ⊙ tanh(A[t]) + shift                  = [i, f, g, o]
    c_t  = f ⊙ c_{t-1} + i ⊙ g,   T_t = tanh(c_t),   h_t = o ⊙ T_t

and backward, the steps in reverse (``dh`` gathers ``g_out[t]`` and the later step's ``W_hhᵀ dA``)::

    dc  += dh ⊙ o ⊙ (1 - T_t²)
    dA[t] = [dc ⊙ g, dc ⊙ c_{t-1}, dc ⊙ i, dh ⊙ T_t] ⊙ [i(1-i), f(1-f), 1-g², o(1-o)]
    dc_{t-1} = dc ⊙ f,   dh_{t-1} = W_hhᵀ dA[t]
    dW_ih = Σ_t dA[t] x_tᵀ,   dW_hh = Σ_t dA[t] h_{t-1}ᵀ,   db = Σ_t Σ_n dA[t],   dx_t = W_ihᵀ dA[t]

The gates' derivatives are read off the gates: ``(u + k)(1 - u)`` with
``k = (0, 0, 1, 0)`` per block is ``u(1-u)`` for a sigmoid and ``1 - u²`` for
``tanh``. The sums over time are one GEMM each over every step's ``dA``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

__all__ = ["LSTMSaved", "lstm_backward", "lstm_forward"]


class LSTMSaved(NamedTuple):
    """What one direction's forward keeps, every state batch last: the input ``x`` ``(L, N, I)``,
    the weights, whether a bias was added, the gates ``(L, 4H, N)``, ``tanh(c_t)`` ``(L, H, N)``,
    the states ``h`` and ``c`` with their initial values ``(L + 1, H, N)``, and the direction."""

    x: np.ndarray
    w_ih: np.ndarray
    w_hh: np.ndarray
    has_bias: bool
    gates: np.ndarray
    tanh_c: np.ndarray
    h: np.ndarray
    c: np.ndarray
    reverse: bool


@functools.lru_cache(maxsize=32)
def _constants(hidden: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(s, shift, k)`` per gate block as ``(4H, 1)`` columns (read-only: shared by every call)."""
    blocks = np.repeat(np.array([[0.5, 0.5, 1.0, 0.5], [0.5, 0.5, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0]], dtype), hidden, 1)
    columns = tuple(np.ascontiguousarray(row[:, None]) for row in blocks)
    for a in columns:
        a.flags.writeable = False
    return columns  # type: ignore[return-value]


def _order(steps: int, reverse: bool) -> range:
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _ends(reverse: bool, steps: int) -> tuple[int, int]:
    """Positions in the ``(L + 1)``-long state arrays of the initial and the last state."""
    return (steps, 0) if reverse else (0, steps)


def lstm_forward(
    x: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    bias: np.ndarray | None,
    h0: np.ndarray,
    c0: np.ndarray,
    reverse: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, LSTMSaved]:
    """One layer and direction: ``(outputs (L, N, H), h_last (N, H), c_last (N, H), saved)``.

    ``x`` ``(L, N, I)`` time major; ``bias`` is ``b_ih + b_hh`` (or None);
    ``reverse`` runs ``t = L-1 … 0``. The results are transposed views of the
    batch-last states (``outputs`` of what the backward keeps: read, never write, them).
    """
    steps, n, width = x.shape
    hidden = w_hh.shape[1]
    dtype = np.result_type(x.dtype, w_hh.dtype)
    scale, shift, _ = _constants(hidden, dtype.str)
    # the input part of every step at once, batch last, the bias as one more column of ones
    x_t = np.empty((steps, width + 1, n), dtype)
    x_t[:, :width] = x.transpose(0, 2, 1)
    x_t[:, width] = 1.0
    w_in = np.empty((4 * hidden, width + 1), dtype)
    np.multiply(w_ih, scale, out=w_in[:, :width])
    if bias is None:
        w_in[:, width] = 0.0
    else:
        np.multiply(bias, scale[:, 0], out=w_in[:, width])
    gates = np.matmul(w_in, x_t)  # (L, 4H, N)
    w_rec = w_hh * scale
    h = np.empty((steps + 1, hidden, n), dtype)
    c = np.empty((steps + 1, hidden, n), dtype)
    tanh_c = np.empty((steps, hidden, n), dtype)
    recur = np.empty((4 * hidden, n), dtype)
    ig = np.empty((hidden, n), dtype)
    first, last = _ends(reverse, steps)
    h[first], c[first] = h0.T, c0.T
    for t in _order(steps, reverse):
        before, after = (t + 1, t) if reverse else (t, t + 1)
        u = gates[t]
        np.matmul(w_rec, h[before], out=recur)
        u += recur
        np.tanh(u, out=u)
        u *= scale
        u += shift  # [i, f, g, o], each an (H, N) block
        i, f, g, o = u[:hidden], u[hidden : 2 * hidden], u[2 * hidden : 3 * hidden], u[3 * hidden :]
        c_new = c[after]
        np.multiply(f, c[before], out=c_new)
        np.multiply(i, g, out=ig)
        c_new += ig
        np.tanh(c_new, out=tanh_c[t])
        np.multiply(o, tanh_c[t], out=h[after])
    outputs = (h[:-1] if reverse else h[1:]).transpose(0, 2, 1)
    saved = LSTMSaved(x, w_ih, w_hh, bias is not None, gates, tanh_c, h, c, reverse)
    return outputs, h[last].T, c[last].T, saved


def lstm_backward(
    saved: LSTMSaved, g_out: np.ndarray | None, dh: np.ndarray | None, dc: np.ndarray | None, input_grad: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """``(dx or None, dW_ih, dW_hh, db or None, dh_0, dc_0)``.

    ``g_out`` ``(L, N, H)``: ``dL/d(outputs)`` (None: none); ``dh``, ``dc``
    ``(N, H)``: the gradients of the last state (None: zero); ``db`` is the
    gradient of ``b_ih`` and of ``b_hh`` alike.
    """
    x, gates, tanh_c, h, c, reverse = saved.x, saved.gates, saved.tanh_c, saved.h, saved.c, saved.reverse
    steps, width4, n = gates.shape
    hidden = width4 // 4
    dtype = gates.dtype
    _, _, k = _constants(hidden, dtype.str)
    dh_run = np.zeros((hidden, n), dtype)
    dc_run = np.zeros((hidden, n), dtype)
    if dh is not None:
        dh_run[...] = dh.T
    if dc is not None:
        dc_run[...] = dc.T
    w_back = np.ascontiguousarray(saved.w_hh.T)  # (H, 4H)
    d_all = np.empty((steps, width4, n), dtype)
    through = np.empty((hidden, n), dtype)
    slope = np.empty((width4, n), dtype)
    other = np.empty((width4, n), dtype)
    for t in _order(steps, not reverse):
        before = t + 1 if reverse else t
        if g_out is not None:
            dh_run += g_out[t].T
        u, tc, d = gates[t], tanh_c[t], d_all[t]
        i, f, g, o = u[:hidden], u[hidden : 2 * hidden], u[2 * hidden : 3 * hidden], u[3 * hidden :]
        np.multiply(tc, tc, out=through)
        np.subtract(1.0, through, out=through)
        through *= o
        through *= dh_run
        dc_run += through
        np.multiply(dc_run, g, out=d[:hidden])
        np.multiply(dc_run, c[before], out=d[hidden : 2 * hidden])
        np.multiply(dc_run, i, out=d[2 * hidden : 3 * hidden])
        np.multiply(dh_run, tc, out=d[3 * hidden :])
        np.add(u, k, out=slope)
        np.subtract(1.0, u, out=other)
        slope *= other
        d *= slope
        dc_run *= f
        np.matmul(w_back, d, out=dh_run)
    # every step's dA side by side, (4H, L·N): the sums over time are then one GEMM each
    flat = np.ascontiguousarray(d_all.transpose(1, 0, 2)).reshape(width4, steps * n)
    h_prev = h[1:] if reverse else h[:-1]  # (L, H, N)
    d_w_ih = flat @ x.reshape(steps * n, x.shape[2])
    d_w_hh = flat @ np.ascontiguousarray(h_prev.transpose(0, 2, 1)).reshape(steps * n, hidden)
    d_b = np.add.reduce(flat, axis=1) if saved.has_bias else None
    dx = (flat.T @ saved.w_ih).reshape(x.shape) if input_grad else None
    return dx, d_w_ih, d_w_hh, d_b, dh_run.T, dc_run.T
