"""The cells of the recurrent layers: one time step of ``RNN``, ``LSTM`` and ``GRU``, forward and backward.

A cell turns the pre-activation of one step into the new state, and back:
``step`` gives ``h_t`` (and ``c_t``) from ``a_t``, ``step_back`` the gradients
of the pre-activations from ``dh_t`` (and ``dc_t``). The formulas are in
[`nu_xp.layers.recurrent`][nu_xp.layers.recurrent]; the loops over time and layers are there too.
A cell holds no state: what a step needs comes in as arguments, so one cell
object serves every layer of its kind.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np

from ..backends import Backend
from ..functional import sigmoid

__all__ = ["Cell", "GRUCell", "LSTMCell", "RNNCell"]


class Cell:
    """One time step of a recurrence: ``step`` forward, ``step_back`` backward (see the module docstring).

    A cell holds no state: what a step needs comes in as arguments (``consts``:
    the constants of [`constants`][], made once per forward call and kept with
    it for its backward), so a cell object is shared by every layer of its kind.
    """

    gates: ClassVar[int] = 1
    has_cell_state: ClassVar[bool] = False
    #: whether ``b_hh`` simply adds to ``a`` (then it joins ``b_ih`` in the input part, once for all steps)
    fold_hidden_bias: ClassVar[bool] = True

    def constants(self, be: Backend, hidden: int) -> Any:
        """Arrays a step needs besides the state, on the layer's backend (None: none)."""
        return None

    def step(self, ops: Any, a_in: Any, h: Any, c: Any, w_hh_t: Any, b_hh: Any, consts: Any) -> tuple:
        """``(h_t, c_t or None, kept)`` from the input part ``a_in`` and the previous state."""
        raise NotImplementedError

    def step_back(self, ops: Any, dh: Any, dc: Any, kept: tuple, consts: Any) -> tuple[Any, Any, Any, Any]:
        """``(d_in, d_hh, dh_direct or None, dc_prev or None)`` for the gradient ``dh`` (and ``dc``) at this step."""
        raise NotImplementedError


class RNNCell(Cell):
    def __init__(self, nonlinearity: str) -> None:
        self.relu = nonlinearity == "relu"

    def step(self, ops: Any, a_in: Any, h: Any, c: Any, w_hh_t: Any, b_hh: Any, consts: Any) -> tuple:
        a = a_in + h @ w_hh_t
        if b_hh is not None:
            a = a + b_hh
        h_new = ops.clamp_min(a, 0.0) if self.relu else ops.xp.tanh(a)
        return h_new, None, (h_new,)

    def step_back(self, ops: Any, dh: Any, dc: Any, kept: tuple, consts: Any) -> tuple[Any, Any, Any, Any]:
        (h_new,) = kept
        d = dh * ops.astype(h_new > 0, dh.dtype) if self.relu else dh * (1.0 - h_new * h_new)
        return d, d, None, None


class LSTMCell(Cell):
    """The four gates with one ``tanh`` over all of ``a``: ``σ(x) = (1 + tanh(x/2)) / 2``.

    With ``s = (½, ½, 1, ½)`` per gate block, ``t = tanh(s ⊙ a)`` and
    ``u = [i, f, g, o] = s ⊙ t + (½, ½, 0, ½)``: three array operations for all
    four gates (never an overflow). Their derivatives are read off the gates
    alone, ``σ' = σ(1 - σ)`` and ``tanh' = 1 - tanh²``, in one formula for all
    four blocks: ``u ⊙ (β - u) + α`` with ``β = (1, 1, 0, 1)`` and ``α = (0, 0, 1, 0)``
    per block; so a step keeps the gates, not ``t`` as well (one ``N × 4H``
    array per step fewer: in a compiled scan, one stacked output fewer).
    The constants ``(s, shift, α, β)`` are host arrays, made once per hidden size,
    and moved to the backend per forward call (never an array cached from a call:
    under ``jax.jit`` it would be a traced value).
    """

    gates = 4
    has_cell_state = True

    @staticmethod
    @functools.lru_cache(maxsize=32)
    def _host_constants(hidden: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        blocks = np.repeat(np.array([0.5, 0.5, 1.0, 0.5]), hidden)
        shift = np.repeat(np.array([0.5, 0.5, 0.0, 0.5]), hidden)
        alpha = np.repeat(np.array([0.0, 0.0, 1.0, 0.0]), hidden)
        return blocks, shift, alpha, 1.0 - alpha

    def constants(self, be: Backend, hidden: int) -> Any:
        return tuple(be.from_host(a, dtype=be.dtype) for a in self._host_constants(hidden))

    def step(self, ops: Any, a_in: Any, h: Any, c: Any, w_hh_t: Any, b_hh: Any, consts: Any) -> tuple:
        scale, shift = consts[0], consts[1]
        a = a_in + h @ w_hh_t
        if b_hh is not None:
            a = a + b_hh
        size = a.shape[1] // 4
        t = ops.xp.tanh(a * scale)
        gates = t * scale + shift  # [σ(a_i), σ(a_f), tanh(a_g), σ(a_o)]
        i, f, g, o = gates[:, :size], gates[:, size : 2 * size], gates[:, 2 * size : 3 * size], gates[:, 3 * size :]
        c_new = f * c + i * g
        tanh_c = ops.xp.tanh(c_new)
        return o * tanh_c, c_new, (gates, c, tanh_c)

    def step_back(self, ops: Any, dh: Any, dc: Any, kept: tuple, consts: Any) -> tuple[Any, Any, Any, Any]:
        gates, c_prev, tanh_c = kept
        size = tanh_c.shape[1]
        i, f, g, o = gates[:, :size], gates[:, size : 2 * size], gates[:, 2 * size : 3 * size], gates[:, 3 * size :]
        through_h = dh * o * (1.0 - tanh_c * tanh_c)
        dc = through_h if dc is None else dc + through_h
        xp = ops.xp
        upstream = xp.concat([dc, dc, dc, dh], axis=1) * xp.concat([g, c_prev, i, tanh_c], axis=1)  # dL/d[i, f, g, o]
        alpha, beta = consts[2], consts[3]
        d = upstream * (gates * (beta - gates) + alpha)  # times each gate's derivative: u(1-u) or 1-u²
        return d, d, None, dc * f


class GRUCell(Cell):
    gates = 3
    fold_hidden_bias = False  # b_hh's n part is multiplied by r

    def step(self, ops: Any, a_in: Any, h: Any, c: Any, w_hh_t: Any, b_hh: Any, consts: Any) -> tuple:
        a_h = h @ w_hh_t
        if b_hh is not None:
            a_h = a_h + b_hh
        size = a_h.shape[1] // 3
        rz = sigmoid(ops, a_in[:, : 2 * size] + a_h[:, : 2 * size])
        r, z = rz[:, :size], rz[:, size:]
        a_hn = a_h[:, 2 * size :]
        n = ops.xp.tanh(a_in[:, 2 * size :] + r * a_hn)
        return (1.0 - z) * n + z * h, None, (r, z, n, a_hn, h)

    def step_back(self, ops: Any, dh: Any, dc: Any, kept: tuple, consts: Any) -> tuple[Any, Any, Any, Any]:
        r, z, n, a_hn, h_prev = kept
        dn = dh * (1.0 - z) * (1.0 - n * n)
        dz = dh * (h_prev - n) * z * (1.0 - z)
        dr = dn * a_hn * r * (1.0 - r)
        return ops.xp.concat([dr, dz, dn], axis=1), ops.xp.concat([dr, dz, dn * r], axis=1), dh * z, None
