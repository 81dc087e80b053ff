"""Recurrent layers: ``RNN`` (tanh or relu), ``LSTM`` and ``GRU``, as ``torch.nn`` lays them out.

One layer runs ``num_layers`` stacked recurrences, each in one or two
directions. For one direction the work splits in two parts:

* the input part of every time step at once, one matrix product
  ``A_in = X @ W_ih.T + b_ih`` of shape ``(L, N, G·H)`` (``G`` gates);
* the time loop, the only loop: ``a_t = A_in[t] + h_{t-1} @ W_hh.T + b_hh``,
  then the cell's gates turn ``a_t`` into ``h_t`` (and ``c_t`` for LSTM).

**Backpropagation through time** runs the loop backwards. At step ``t`` the
gradient reaching ``h_t`` is what the output received there plus what step
``t+1`` sent back, ``dh_t = g_out[t] + dh_from_{t+1}``; the cell turns it
into the gradients of its pre-activations (``d_in`` for the input part,
``d_hh`` for the hidden part; equal except in GRU) and sends
``dh_{t-1} = d_hh @ W_hh`` (plus ``dh_t ⊙ z`` in GRU) to the step before.
The weight gradients are then sums over time, so they are one matrix
product each after the loop::

    dW_ih = Σ_t d_in[t].T @ x_t   = D_in.T  @ X         db_ih = Σ_t Σ_n d_in[t]
    dW_hh = Σ_t d_hh[t].T @ h_t-1 = D_hh.T  @ H_prev    db_hh = Σ_t Σ_n d_hh[t]
    dX    = D_in @ W_ih

The cells (σ is the logistic sigmoid, ⊙ the elementwise product):

* RNN: ``h_t = tanh(a_t)`` (or ``relu``); ``d_in = d_hh = dh_t ⊙ (1 - h_t²)`` (or ``⊙ [h_t > 0]``).
* LSTM, gates in the order i, f, g, o of ``a_t``::

      i = σ(a_i)  f = σ(a_f)  g = tanh(a_g)  o = σ(a_o)
      c_t = f ⊙ c_{t-1} + i ⊙ g        h_t = o ⊙ tanh(c_t)

  backward, with ``dc_t`` = what step t+1 sent plus ``dh_t ⊙ o ⊙ (1 - tanh²(c_t))``::

      d_o = dh_t ⊙ tanh(c_t) ⊙ o(1-o)     d_i = dc_t ⊙ g ⊙ i(1-i)
      d_f = dc_t ⊙ c_{t-1} ⊙ f(1-f)       d_g = dc_t ⊙ i ⊙ (1-g²)
      dc_{t-1} = dc_t ⊙ f

* GRU, gates r, z, n; the input part ``a^x`` and hidden part ``a^h = h_{t-1} @ W_hh.T + b_hh``
  meet differently in ``n``::

      r = σ(a^x_r + a^h_r)   z = σ(a^x_z + a^h_z)   n = tanh(a^x_n + r ⊙ a^h_n)
      h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

  backward: ``δn = dh_t ⊙ (1-z) ⊙ (1-n²)``, ``δz = dh_t ⊙ (h_{t-1} - n) ⊙ z(1-z)``,
  ``δr = δn ⊙ a^h_n ⊙ r(1-r)``; ``d_in = [δr, δz, δn]``, ``d_hh = [δr, δz, δn ⊙ r]``
  and ``dh_{t-1} = d_hh @ W_hh + dh_t ⊙ z``.

Every step is array code of the array API, so the same loop runs on every
backend. What backward needs is kept once: the gates of each step (which are
computed anyway) and the stacked inputs.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..backends import Backend
from ..initializers import host_rng
from ..validation import check_number, check_positive_int
from .base import Layer, check_grad
from .cells import Cell, GRUCell, LSTMCell, RNNCell
from .dropout import dropout_mask, restore_rng
from .parameter import Parameter, accumulate
from .registry import register_layer

__all__ = ["GRU", "LSTM", "MAX_LAYERS", "RNN"]

#: the most stacked layers a recurrent layer may have: ``parameter_shapes`` lists four arrays per layer
#: and direction, and ``nu_xp.load`` calls it on a file's config before comparing with the file's arrays
MAX_LAYERS = 10_000


class _Direction(NamedTuple):
    """What one direction of one layer keeps for its backward."""

    inputs: Any  #: the layer's input ``(L, N, width)``
    h_prev: Any  #: the state entering each step (a list; one array after a scan; None after the backend's own loop)
    kept: Any  #: what each step's cell kept (or what the backend's own loop kept, ``Ops.lstm``)


class _Kept(NamedTuple):
    """What a forward of a recurrent layer keeps for its backward."""

    layers: list[tuple[list[_Direction], Any]]  #: per layer: its directions and its output's dropout mask (or None)
    consts: Any  #: the cell's constants (``Cell.constants``)
    steps: int
    batch: int
    batched: bool
    hx_given: bool


# ---------------------------------------------------------------------------------------- the layer
class _RNNBase(Layer):
    """What ``RNN``, ``LSTM`` and ``GRU`` share: parameters, shapes, the stacked loops, the checks.

    A subclass says which cell runs each time step, in one place: ``cells``,
    the cell for each allowed ``nonlinearity`` (only ``RNN`` has a choice).
    """

    _backend: Backend
    #: the cell of each time step, by ``nonlinearity`` (its number of gates sizes the parameters)
    cells: ClassVar[dict[str, Cell]] = {"tanh": RNNCell("tanh"), "relu": RNNCell("relu")}
    nonlinearity: str = "tanh"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        seed: int | None = None,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        config = {
            "input_size": input_size,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "bias": bias,
            "batch_first": batch_first,
            "dropout": dropout,
            "bidirectional": bidirectional,
        }
        shapes = self.parameter_shapes(config)
        super().__init__(backend=backend, device=device, dtype=dtype)
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        self.dropout = float(dropout)
        # PyTorch's initialization: every weight and bias from U(-1/√H, 1/√H), drawn in parameter order
        rng = host_rng(seed)
        bound = 1.0 / math.sqrt(self.hidden_size)
        be = self.backend
        for name, shape in shapes.items():
            setattr(self, name, Parameter(be.from_host(rng.uniform(-bound, bound, shape).astype(be.dtype_name))))
        self._dropout_rng = host_rng(int(rng.integers(2**63)))

    @property
    def _cell(self) -> Cell:
        return self.cells[self.nonlinearity]

    # ------------------------------------------------------------------ configuration
    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """``weight_ih_l{k}`` ``(G·H, in)``, ``weight_hh_l{k}`` ``(G·H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
        ``(G·H,)``, and the same with ``_reverse`` for the second direction (``G`` gates: 1, 4 or 3)."""
        n_in = check_positive_int("input_size", config.get("input_size"))
        hidden = check_positive_int("hidden_size", config.get("hidden_size"))
        layers = check_positive_int("num_layers", config.get("num_layers", 1))
        if layers > MAX_LAYERS:  # a file's config is checked here before anything is built: no endless listing
            raise ValueError(f"{cls.__name__} num_layers must be at most {MAX_LAYERS}, got {layers}")
        flags = {k: config.get(k, d) for k, d in (("bias", True), ("batch_first", False), ("bidirectional", False))}
        for name, flag in flags.items():
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{cls.__name__} {name} must be True or False, got {flag!r}")
        check_number("dropout", config.get("dropout", 0.0), 0.0, 1.0)
        nonlinearity = config.get("nonlinearity", "tanh")
        if nonlinearity not in cls.cells:
            raise ValueError(f"{cls.__name__} nonlinearity must be one of {sorted(cls.cells)}, got {nonlinearity!r}")
        gates = cls.cells[nonlinearity].gates * hidden
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(layers):
            width = n_in if layer == 0 else hidden * (2 if flags["bidirectional"] else 1)
            for suffix in ("", "_reverse") if flags["bidirectional"] else ("",):
                shapes[f"weight_ih_l{layer}{suffix}"] = (gates, width)
                shapes[f"weight_hh_l{layer}{suffix}"] = (gates, hidden)
                if flags["bias"]:
                    shapes[f"bias_ih_l{layer}{suffix}"] = (gates,)
                    shapes[f"bias_hh_l{layer}{suffix}"] = (gates,)
        return shapes

    def get_config(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
        }

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        defaults = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False}
        for name, default in defaults.items():
            value = getattr(self, name)
            if value != default:
                text += f", {name}={value!r}"
        return text

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _weights(self, layer: int, direction: int) -> tuple[Any, Any, Any, Any]:
        """``(W_ih, W_hh, b_ih, b_hh)`` Parameters of one layer and direction (biases None without ``bias``)."""
        suffix = f"l{layer}{'_reverse' if direction else ''}"
        get = vars(self).get
        return (
            get(f"weight_ih_{suffix}"),
            get(f"weight_hh_{suffix}"),
            get(f"bias_ih_{suffix}"),
            get(f"bias_hh_{suffix}"),
        )

    # ------------------------------------------------------------------ forward
    def forward(self, x: Any, hx: Any = None) -> Any:
        """``(output, h_n)`` (``(output, (h_n, c_n))`` for LSTM), as ``torch.nn`` returns them.

        ``x`` is ``(L, N, input_size)`` (``(N, L, input_size)`` with ``batch_first``) or unbatched
        ``(L, input_size)``; ``hx`` the initial state ``(num_layers·D, N, H)`` (unbatched:
        ``(num_layers·D, H)``), zeros when None. ``output`` holds the last layer's ``h_t`` for every
        ``t`` (both directions side by side, ``D·H`` wide); ``h_n`` every layer's final state.
        """
        be = self._backend
        xp = be.xp
        x, batched = self._time_major(x)
        steps, n = x.shape[0], x.shape[1]
        h0, c0 = self._initial_state(hx, n, batched)
        cell = self._cell
        consts = cell.constants(be, self.hidden_size)
        layer_input = x
        layers_kept = []
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs, directions = [], []
            for direction in range(self._directions):
                k = layer * self._directions + direction
                c_init = c0[k, ...] if c0 is not None else None
                out, h, c, kept = self._run_direction(layer, direction, layer_input, h0[k, ...], c_init, consts)
                outs.append(out)
                directions.append(kept)
                h_n.append(h)
                c_n.append(c)
            out = outs[0] if len(outs) == 1 else xp.concat(outs, axis=2)
            mask = None
            if self.training and self.dropout > 0.0 and layer < self.num_layers - 1:
                mask = be.from_host(dropout_mask(self._dropout_rng, tuple(out.shape), self.dropout), dtype=be.dtype)
                out = out * mask
            layers_kept.append((directions, mask))
            layer_input = out
        self.save_for_backward(_Kept(layers_kept, consts, steps, n, batched, hx is not None))
        output = layer_input
        h_stack = xp.stack(h_n, axis=0)
        c_stack = xp.stack(c_n, axis=0) if cell.has_cell_state else None
        if not batched:
            output, h_stack = output[:, 0, :], h_stack[:, 0, :]
            c_stack = c_stack[:, 0, :] if c_stack is not None else None
        elif self.batch_first:
            output = xp.permute_dims(output, (1, 0, 2))
        return (output, (h_stack, c_stack)) if cell.has_cell_state else (output, h_stack)

    def _time_major(self, x: Any) -> tuple[Any, bool]:
        """``(x as (L, N, input_size), whether it had a batch axis)``, checked."""
        be = self._backend
        xp = be.xp
        name = type(self).__name__
        x = be.check(x, role=f"{name} input")
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            layout = "(N, L, input_size)" if self.batch_first else "(L, N, input_size)"
            raise ValueError(
                f"{name}({self.input_size}, {self.hidden_size}) expects input of shape {layout} or unbatched "
                f"(L, input_size) with input_size={self.input_size}, got {tuple(x.shape)}"
            )
        batched = x.ndim == 3
        if not batched:
            x = xp.expand_dims(x, axis=1)
        elif self.batch_first:
            x = xp.permute_dims(x, (1, 0, 2))
        if x.shape[0] == 0:
            raise ValueError(f"{name} input has no time steps (shape {tuple(x.shape)}); give at least one")
        return x, batched

    def _run_direction(
        self, layer: int, direction: int, inputs: Any, h: Any, c: Any, consts: Any
    ) -> tuple[Any, Any, Any, _Direction]:
        """One layer in one direction: ``(outputs (L, N, H), h_last, c_last, what its backward needs)``.

        The input part of every step is one product; the loop runs the steps
        forward (the reverse direction: from the end).
        """
        be = self._backend
        xp = be.xp
        cell, hidden = self._cell, self.hidden_size
        steps, n = inputs.shape[0], inputs.shape[1]
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
        if (
            isinstance(cell, LSTMCell)
            and be.ops.native_lstm
            and not be.ops.is_traced(inputs)
            and be.ops.lstm_supports(inputs)
        ):
            bias = None if b_ih is None else b_ih.data + b_hh.data
            outputs, h, c, saved = be.ops.lstm(inputs, w_ih.data, w_hh.data, bias, h, c, bool(direction))
            return outputs, h, c, _Direction(inputs, None, saved)
        a_in = xp.reshape(inputs, (steps * n, inputs.shape[2])) @ w_ih.data.T
        fold = b_hh is not None and cell.fold_hidden_bias
        if b_ih is not None:
            a_in = a_in + (b_ih.data + b_hh.data if fold else b_ih.data)
        a_in = xp.reshape(a_in, (steps, n, cell.gates * hidden))
        w, b = w_hh.data.T, (b_hh.data if b_hh is not None and not fold else None)
        if be.ops.structured_loops and be.ops.is_traced(a_in):  # compiling: one scan, its body traced once
            # (eagerly, a scan of a new closure would compile at every call: the plain loop runs instead)

            def body(carry: Any, x_t: Any) -> Any:
                h_t, c_t = carry
                h_new, c_new, kept_t = cell.step(be.ops, x_t[0], h_t, c_t, w, b, consts)
                return (h_new, c_new), (h_new, kept_t)

            (h_last, c), (outputs, kept_all) = be.ops.scan(body, (h, c), (a_in,), reverse=bool(direction))
            # the state each step read: the initial one, then the outputs (one array made after the loop
            # instead of a second stacked output of every step)
            first = h[None, ...]
            before = [outputs[1:, ...], first] if direction else [first, outputs[: steps - 1, ...]]
            h_prev_all = xp.concat(before, axis=0)
            return outputs, h_last, c, _Direction(inputs, h_prev_all, kept_all)
        hs: list[Any] = [None] * steps
        kept: list[Any] = [None] * steps
        h_prev: list[Any] = [None] * steps
        for t in range(steps - 1, -1, -1) if direction else range(steps):
            h_prev[t] = h
            h, c, kept[t] = cell.step(be.ops, a_in[t, ...], h, c, w, b, consts)
            hs[t] = h
        return xp.stack(hs, axis=0), h, c, _Direction(inputs, h_prev, kept)

    def _initial_state(self, hx: Any, n: int, batched: bool) -> tuple[Any, Any]:
        """``(h0, c0 or None)`` as ``(num_layers·D, N, H)`` arrays (zeros for None), checked."""
        be = self._backend
        xp = be.xp
        shape = (self.num_layers * self._directions, n, self.hidden_size)
        if hx is None:
            zeros = xp.zeros(shape, dtype=be.dtype, device=be.device)
            return zeros, (zeros if self._cell.has_cell_state else None)
        name = type(self).__name__
        if self._cell.has_cell_state:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTM hx must be a pair (h_0, c_0) of arrays, got {type(hx).__name__}")
            parts = [("h_0", hx[0]), ("c_0", hx[1])]
        else:
            if isinstance(hx, (tuple, list)):
                raise TypeError(f"{name} hx must be one array h_0, got a {type(hx).__name__}")
            parts = [("h_0", hx)]
        states = []
        want = shape if batched else (shape[0], shape[2])
        for label, value in parts:
            value = be.check(value, role=f"{name} {label}")
            if tuple(value.shape) != want:
                raise ValueError(
                    f"{name} {label} must have shape {want} (num_layers * num_directions, "
                    f"{'batch, ' if batched else ''}hidden_size) for this input, got {tuple(value.shape)}"
                )
            states.append(value if batched else xp.expand_dims(value, axis=1))
        return states[0], (states[1] if len(states) > 1 else None)

    # ------------------------------------------------------------------ backward
    def backward(self, grad: Any, *, input_grad: bool = True) -> Any:
        """Backpropagation through time; returns ``dL/dx``, or ``(dL/dx, dL/dhx)`` when ``hx`` was given.

        ``grad`` is ``dL/d(output)`` alone, or a structure like the forward's result:
        ``(g_output, g_h_n)`` (``(g_output, (g_h_n, g_c_n))`` for LSTM), with ``None`` for
        any part that has no gradient. Every parameter gradient is accumulated.
        """
        kept: _Kept = self.saved_tensors()[0]
        xp = self._backend.xp
        g_out, g_h, g_c = self._split_grad(grad, kept.steps, kept.batch, kept.batched)
        dirs = self._directions
        dh0: list[Any] = [None] * (self.num_layers * dirs)
        dc0: list[Any] = [None] * (self.num_layers * dirs)
        for layer in range(self.num_layers - 1, -1, -1):
            directions, mask = kept.layers[layer]
            if g_out is not None and mask is not None:
                g_out = g_out * mask
            dx = None
            for direction in range(dirs):
                k = layer * dirs + direction
                hidden = self.hidden_size
                g_dir = None if g_out is None else g_out[:, :, direction * hidden : (direction + 1) * hidden]
                dh = None if g_h is None else g_h[k, ...]
                dc = None if g_c is None else g_c[k, ...]
                part, dh0[k], dc0[k] = self._back_direction(
                    layer, direction, directions[direction], g_dir, dh, dc, kept.consts, layer > 0 or input_grad
                )
                dx = part if dx is None else dx + part
            g_out = dx
        dx = g_out
        if dx is not None:
            if not kept.batched:
                dx = dx[:, 0, :]
            elif self.batch_first:
                dx = xp.permute_dims(dx, (1, 0, 2))
        if not kept.hx_given:
            return dx
        dh_stack = self._state_grad(dh0, kept.batched)
        if self._cell.has_cell_state:
            dc_filled = [c if c is not None else xp.zeros_like(dh0[0]) for c in dc0]
            return dx, (dh_stack, self._state_grad(dc_filled, kept.batched))
        return dx, dh_stack

    def _back_direction(
        self, layer: int, direction: int, kept: _Direction, g_out: Any, dh: Any, dc: Any, consts: Any, want_dx: bool
    ) -> tuple[Any, Any, Any]:
        """Backpropagation through time for one layer and direction: ``(dL/d(its input) or None, dh_0, dc_0)``.

        The loop runs the steps in the reverse of the forward's order; the
        weight gradients are then one product each (sums over time).
        """
        be = self._backend
        xp = be.xp
        cell, hidden = self._cell, self.hidden_size
        steps, n = kept.inputs.shape[0], kept.inputs.shape[1]
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
        w = w_hh.data
        gates = cell.gates * hidden
        if kept.h_prev is None:  # the forward ran the backend's own LSTM loop: so does the backward
            dx, d_w_ih, d_w_hh, d_b, dh, dc = be.ops.lstm_backward(kept.kept, g_out, dh, dc, want_dx)
            accumulate(w_ih, d_w_ih)
            accumulate(w_hh, d_w_hh)
            if b_ih is not None and b_hh is not None:
                accumulate(b_ih, d_b)
                accumulate(b_hh, be.xp.asarray(d_b, copy=True))  # its own array: a gradient is never shared
            return dx, dh, dc
        if not isinstance(kept.h_prev, list):  # the forward ran as a scan: the reverse loop as one scan too
            d_in_all, d_hh_all, dh, dc = self._back_scan(kept, g_out, dh, dc, w, consts, direction)
            h_prev_all = kept.h_prev
        else:
            d_in: list[Any] = [None] * steps
            d_hh: list[Any] = [None] * steps
            for t in range(steps) if direction else range(steps - 1, -1, -1):
                if g_out is not None:
                    dh = g_out[t, ...] if dh is None else dh + g_out[t, ...]
                if dh is None:  # no gradient reached this step yet (only c_n had one)
                    dh = xp.zeros_like(kept.h_prev[t])
                d_in[t], d_hh[t], direct, dc = cell.step_back(be.ops, dh, dc, kept.kept[t], consts)
                dh = d_hh[t] @ w if direct is None else d_hh[t] @ w + direct
            d_in_all = xp.stack(d_in, axis=0)
            d_hh_all = d_in_all if d_hh[0] is d_in[0] else xp.stack(d_hh, axis=0)  # GRU: r scales n's hidden part
            h_prev_all = xp.stack(kept.h_prev, axis=0)
        d_in_all = xp.reshape(d_in_all, (steps * n, gates))
        d_hh_all = d_in_all if d_hh_all is None else xp.reshape(d_hh_all, (steps * n, gates))
        width = kept.inputs.shape[2]
        if w_ih.requires_grad:
            accumulate(w_ih, d_in_all.T @ xp.reshape(kept.inputs, (steps * n, width)))
        if w_hh.requires_grad:
            accumulate(w_hh, d_hh_all.T @ xp.reshape(h_prev_all, (steps * n, hidden)))
        if b_ih is not None and b_hh is not None:
            accumulate(b_ih, xp.sum(d_in_all, axis=0))
            accumulate(b_hh, xp.sum(d_hh_all, axis=0))
        dx = xp.reshape(d_in_all @ w_ih.data, (steps, n, width)) if want_dx else None
        return dx, dh, dc

    def _back_scan(
        self, kept: _Direction, g_out: Any, dh: Any, dc: Any, w: Any, consts: Any, direction: int
    ) -> tuple[Any, Any, Any, Any]:
        """The backward loop as one [`scan`][nu_xp.backends.ops.Ops.scan]: ``(d_in, d_hh or None, dh_0, dc_0)``.

        The same step as the plain loop, with a carry whose structure never changes: ``dh`` (and an LSTM's
        ``dc``) start as zeros where no gradient has reached them yet, which adds nothing.
        """
        be = self._backend
        xp, cell = be.xp, self._cell
        zeros = xp.zeros_like(kept.h_prev[0])
        dh = zeros if dh is None else dh
        dc = (zeros if dc is None else dc) if cell.has_cell_state else None
        separate = not isinstance(cell, (RNNCell, LSTMCell))  # GRU: d_hh differs from d_in

        def body(carry: Any, x_t: Any) -> Any:
            dh_t, dc_t = carry
            g_t, kept_t = x_t
            if g_t is not None:
                dh_t = dh_t + g_t
            d_in, d_hh, direct, dc_prev = cell.step_back(be.ops, dh_t, dc_t, kept_t, consts)
            dh_prev = d_hh @ w if direct is None else d_hh @ w + direct
            return (dh_prev, dc_prev), (d_in, d_hh if separate else None)

        (dh, dc), (d_in_all, d_hh_all) = be.ops.scan(body, (dh, dc), (g_out, kept.kept), reverse=not direction)
        return d_in_all, d_hh_all, dh, dc

    def _state_grad(self, parts: list[Any], batched: bool) -> Any:
        stacked = self._backend.xp.stack(parts, axis=0)
        return stacked if batched else stacked[:, 0, :]

    def _split_grad(self, grad: Any, steps: int, n: int, batched: bool) -> tuple[Any, Any, Any]:
        """``(g_output, g_h_n, g_c_n)`` as time-major batched arrays (None where absent), checked."""
        be = self._backend
        xp = be.xp
        name = type(self).__name__
        if isinstance(grad, (tuple, list)):
            if len(grad) != 2:
                raise ValueError(f"{name}.backward takes dL/d(output) or a pair (g_output, g_state), got {len(grad)}")
            g_out, g_state = grad
        else:
            g_out, g_state = grad, None
        width = self._directions * self.hidden_size
        if g_out is not None:
            shape: tuple[int, ...]
            if not batched:
                shape = (steps, width)
            else:
                shape = (n, steps, width) if self.batch_first else (steps, n, width)
            g_out = check_grad(self, g_out, shape, be)
            if not batched:
                g_out = xp.expand_dims(g_out, axis=1)
            elif self.batch_first:
                g_out = xp.permute_dims(g_out, (1, 0, 2))
        state_shape: tuple[int, ...] = (self.num_layers * self._directions, n, self.hidden_size)
        if not batched:
            state_shape = (state_shape[0], state_shape[2])
        g_h = g_c = None
        if g_state is not None:
            if self._cell.has_cell_state:
                if not isinstance(g_state, (tuple, list)) or len(g_state) != 2:
                    raise TypeError("LSTM.backward: the state's gradient must be a pair (g_h_n, g_c_n), None allowed")
                g_h, g_c = g_state
            else:
                g_h = g_state
            g_h = None if g_h is None else check_grad(self, g_h, state_shape, be)
            g_c = None if g_c is None else check_grad(self, g_c, state_shape, be)
            if not batched:
                g_h = None if g_h is None else xp.expand_dims(g_h, axis=1)
                g_c = None if g_c is None else xp.expand_dims(g_c, axis=1)
        if g_out is None and g_h is None and g_c is None:
            raise ValueError(f"{name}.backward got no gradient at all (every part is None)")
        return g_out, g_h, g_c

    # ------------------------------------------------------------------ extra state
    def get_extra_state(self) -> Any:
        """The generator of the dropout masks between layers (None without dropout)."""
        return {"rng": self._dropout_rng.bit_generator.state} if self.dropout > 0 else None

    def set_extra_state(self, state: Any) -> None:
        """Restore the generator of the dropout masks; ``ValueError`` for a malformed state."""
        self._dropout_rng = restore_rng(state, type(self).__name__)


@register_layer
class RNN(_RNNBase):
    """Elman recurrence ``h_t = tanh(x_t W_ih.T + b_ih + h_{t-1} W_hh.T + b_hh)`` (or ``relu``), as ``torch.nn.RNN``.

    Backward through time: ``d_t = dh_t ⊙ (1 - h_t²)`` (relu: ``⊙ [h_t > 0]``),
    ``dh_{t-1} = d_t @ W_hh``; ``dW_ih = Σ_t d_tᵀ x_t``, ``dW_hh = Σ_t d_tᵀ h_{t-1}``,
    both biases ``Σ_t d_t``, ``dx_t = d_t @ W_ih`` (the full story in
    [`nu_xp.layers.recurrent`][nu_xp.layers.recurrent]).

    Parameters
    ----------
    input_size, hidden_size : int
        Features of ``x_t`` and of ``h_t``.
    num_layers : int, default 1
        Stacked recurrences, each reading the previous one's output.
    nonlinearity : {"tanh", "relu"}
    bias : bool, default True
        Whether to learn ``b_ih`` and ``b_hh``.
    batch_first : bool, default False
        Inputs and outputs ``(N, L, H)`` instead of ``(L, N, H)`` (states stay ``(layers·D, N, H)``).
    dropout : float, default 0
        Dropout on each layer's output except the last's, in training.
    bidirectional : bool, default False
        A second recurrence runs from the end; outputs side by side, ``2·H`` wide.
    seed, backend, device, dtype :
        Initial values (PyTorch's U(-1/√H, 1/√H)) and where the parameters live.

    Examples
    --------
    >>> import nu_xp, numpy as np
    >>> rnn = nu_xp.RNN(3, 5, num_layers=2, seed=0)
    >>> out, h_n = rnn(nu_xp.asarray(np.zeros((7, 2, 3), dtype="float32")))
    >>> out.shape, h_n.shape
    ((7, 2, 5), (2, 2, 5))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        seed: int | None = None,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in self.cells:
            raise ValueError(f"RNN nonlinearity must be one of {sorted(self.cells)}, got {nonlinearity!r}")
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            seed=seed,
            backend=backend,
            device=device,
            dtype=dtype,
        )
        self.nonlinearity = nonlinearity

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "nonlinearity": self.nonlinearity}

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.nonlinearity == "tanh" else f"{text}, nonlinearity={self.nonlinearity!r}"


@register_layer
class LSTM(_RNNBase):
    """Long short-term memory, as ``torch.nn.LSTM`` (gates i, f, g, o); returns ``(output, (h_n, c_n))``.

    Forward, for ``a = x_t W_ih.T + b_ih + h_{t-1} W_hh.T + b_hh`` split in four::

        i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
        c_t = f ⊙ c_{t-1} + i ⊙ g                h_t = o ⊙ tanh(c_t)

    Backward, step by step from the end, with ``dh_t`` (from the output and
    from step t+1) and ``dc_t = dc_from_{t+1} + dh_t ⊙ o ⊙ (1 - tanh²c_t)``::

        da_i = dc_t ⊙ g ⊙ i(1-i)        da_f = dc_t ⊙ c_{t-1} ⊙ f(1-f)
        da_g = dc_t ⊙ i ⊙ (1-g²)        da_o = dh_t ⊙ tanh(c_t) ⊙ o(1-o)
        dh_{t-1} = da @ W_hh             dc_{t-1} = dc_t ⊙ f

    then ``dW_ih = Σ_t daᵀ x_t``, ``dW_hh = Σ_t daᵀ h_{t-1}``, ``db = Σ_t da``.
    The forget gate's product is why gradients survive long sequences: ``dc``
    flows back through ``f`` alone, with no squashing nonlinearity.

    Parameters as [`RNN`][] (no ``nonlinearity``); ``hx`` is a pair ``(h_0, c_0)``
    and ``backward`` then returns ``(dx, (dh_0, dc_0))``.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, seed, backend, device, dtype :
        As for [`RNN`][nu_xp.layers.recurrent.RNN] (four gates ``i, f, g, o`` per layer; no ``nonlinearity``).

    Examples
    --------
    >>> import nu_xp, numpy as np
    >>> lstm = nu_xp.LSTM(3, 4, batch_first=True, seed=0)
    >>> out, (h_n, c_n) = lstm(nu_xp.asarray(np.ones((2, 5, 3), dtype="float32")))
    >>> out.shape, h_n.shape, c_n.shape
    ((2, 5, 4), (1, 2, 4), (1, 2, 4))
    """

    cells: ClassVar[dict[str, Cell]] = {"tanh": LSTMCell()}


@register_layer
class GRU(_RNNBase):
    """Gated recurrent unit, as ``torch.nn.GRU`` (gates r, z, n); returns ``(output, h_n)``.

    Forward, with the input part ``a^x = x_t W_ih.T + b_ih`` and the hidden
    part ``a^h = h_{t-1} W_hh.T + b_hh``, each split in three::

        r = σ(a^x_r + a^h_r)   z = σ(a^x_z + a^h_z)   n = tanh(a^x_n + r ⊙ a^h_n)
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

    Backward::

        δn = dh_t ⊙ (1-z) ⊙ (1-n²)    δz = dh_t ⊙ (h_{t-1} - n) ⊙ z(1-z)    δr = δn ⊙ a^h_n ⊙ r(1-r)
        d(a^x) = [δr, δz, δn]          d(a^h) = [δr, δz, δn ⊙ r]
        dh_{t-1} = d(a^h) @ W_hh + dh_t ⊙ z

    then ``dW_ih = Σ_t d(a^x)ᵀ x_t``, ``dW_hh = Σ_t d(a^h)ᵀ h_{t-1}``.
    Parameters as [`RNN`][] (no ``nonlinearity``).

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, seed, backend, device, dtype :
        As for [`LSTM`][nu_xp.layers.recurrent.LSTM] (three gates ``r, z, n`` per layer instead of four).
    """

    cells: ClassVar[dict[str, Cell]] = {"tanh": GRUCell()}
