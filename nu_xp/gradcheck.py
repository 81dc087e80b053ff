"""Check a layer's or loss's ``backward`` against central finite differences.

For a layer ``f`` with input ``x`` and parameters ``θ``, pick a fixed random
upstream gradient ``g`` and the scalar ``S = Σ g · f(x)``; then ``dS/dx`` is
exactly what ``backward(g)`` returns, and ``dS/dθ`` what it accumulates in
``θ.grad``. Each partial derivative is also estimated numerically::

    dS/dx_i ≈ (S(x + h e_i) - S(x - h e_i)) / (2h)

A layer whose output is a tuple (``LSTM``'s ``(output, (h_n, c_n))``) gets
one random upstream array per array in it, ``S`` sums over all of them, and
``backward`` receives the same structure. A layer with several inputs
(attention's ``query, key, value``; a recurrent layer's ``x, hx``) is checked
over every floating input, each perturbed on its own, against the tuple of
gradients its ``backward`` returns. For a loss ``L(pred, target)``, ``S`` is the loss value and only ``pred`` is
differentiated. Everything runs on a float64 deep copy of the object, on its
own backend; every evaluation starts from a fresh copy, so stochastic layers
such as Dropout draw the same mask each time.

The error of one gradient is ``max|analytic - numeric| / max(max|analytic|,
max|numeric|, 1)``: relative for gradients of size 1 and more, absolute below
(as ``numpy.allclose`` with ``rtol == atol``), because a central difference
cannot resolve a derivative much smaller than its rounding noise
(≈ 1e-16·|S|/h). ``gradcheck`` returns the largest error over every input
gradient and every parameter gradient.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .backends import asarray, backend_of, get_backend, to_host
from .grad_mode import no_grad
from .layers import Layer

__all__ = ["gradcheck", "numeric_gradients"]


def _relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(analytic), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0)), 1.0)
    return float(np.max(np.abs(analytic - numeric))) / scale


def _leaves(out: Any) -> list[Any]:
    """The arrays of a (possibly nested) tuple output, in order; None entries are skipped."""
    if isinstance(out, (tuple, list)):
        return [leaf for part in out for leaf in _leaves(part)]
    return [] if out is None else [out]


def _like_output(out: Any, values: list[Any]) -> Any:
    """``values`` arranged in the structure of ``out`` (consumed from the front)."""
    if isinstance(out, (tuple, list)):
        return tuple(_like_output(part, values) for part in out)
    return None if out is None else values.pop(0)


def _float64_copy(obj: Layer, like: Any) -> Layer:
    clone = copy.deepcopy(obj)
    if clone.parameters():
        clone.to(clone.backend, clone.device, dtype="float64")
    else:
        clone._backend = get_backend(backend_of(like).name, backend_of(like).device, "float64")
    return clone


def _flat(value: Any) -> list[Any]:
    """The leaves of a (possibly nested) tuple of inputs, None included, in order."""
    if isinstance(value, (tuple, list)):
        return [leaf for part in value for leaf in _flat(part)]
    return [value]


def _rebuild(structure: Any, leaves: list[Any]) -> Any:
    """``leaves`` (consumed from the front) arranged as ``structure``."""
    if isinstance(structure, (tuple, list)):
        return tuple(_rebuild(part, leaves) for part in structure)
    return leaves.pop(0)


def _input_grads(returned: Any, inputs: tuple[Any, ...]) -> list[Any]:
    """What ``backward`` returned, as one gradient (or None) per leaf of ``inputs``.

    One input: the return value is its gradient. Several: a tuple with one
    entry per input, as ``MultiheadAttention`` returns ``(dq, dk, dv)`` and the
    recurrent layers ``(dx, dhx)``; inputs past its end get None.
    """
    if len(inputs) == 1:
        parts = [returned]
    else:
        given = list(returned) if isinstance(returned, (tuple, list)) else [returned]
        parts = given + [None] * (len(inputs) - len(given))
    grads: list[Any] = []
    for inp, part in zip(inputs, parts):
        count = len(_flat(inp))
        flat = _flat(part) if isinstance(part, (tuple, list)) else [part] + [None] * (count - 1)
        grads.extend((flat + [None] * count)[:count])
    return grads


def numeric_gradients(layer_or_loss: Any, *inputs: Any, eps: float = 1e-6, seed: int = 0) -> dict[str, tuple]:
    """``{name: (analytic, numeric)}`` host float64 arrays for each floating input and each parameter.

    Inputs are named ``"input"`` (one input) or ``"input0"``, ``"input1"``… (several; the
    leaves of nested inputs such as an LSTM's ``(h0, c0)`` counted in order). See
    [`gradcheck`][nu_xp.gradcheck]; this returns the arrays themselves for inspection.
    """
    if not isinstance(layer_or_loss, Layer):
        raise TypeError(f"gradcheck takes a Layer or a Loss, got {type(layer_or_loss).__name__}")
    is_loss = layer_or_loss.is_loss
    if is_loss and len(inputs) != 2:
        raise TypeError(
            f"gradcheck({type(layer_or_loss).__name__}, ...) takes inputs (pred, target), got {len(inputs)}"
        )
    if not inputs:
        raise TypeError(f"gradcheck({type(layer_or_loss).__name__}, ...) needs the layer's inputs (x, or several)")
    leaves = _flat(inputs)
    if not hasattr(leaves[0], "shape"):
        raise TypeError("gradcheck inputs must be arrays; convert with nu_xp.asarray(x, like=layer)")
    base = _float64_copy(layer_or_loss, leaves[0])
    base.zero_grad()  # measure the layer, not the gradients the caller's model already holds
    # inputs go where the parameters are (a layer with none computes where its first input lives)
    where = base.backend if base.parameters() else leaves[0]
    # host copies, float64 where floating; None and non-arrays (flags) pass unchanged; one copy per distinct
    # object, so an array given as query, key and value stays one array in the analytic pass
    hosts: dict[int, Any] = {}
    for leaf in leaves:
        if hasattr(leaf, "shape") and id(leaf) not in hosts:
            host = np.asarray(to_host(leaf))
            hosts[id(leaf)] = np.array(host, dtype=np.float64 if host.dtype.kind == "f" else None)
    host_leaves = [hosts.get(id(leaf), leaf) for leaf in leaves]
    # differentiated: the floating leaves (a loss: pred only)
    checked = [
        i
        for i, h in enumerate(host_leaves)
        if isinstance(h, np.ndarray) and h.dtype.kind == "f" and (not is_loss or i == 0)
    ]
    upstream = None

    def on_backend(a: Any) -> Any:
        if not isinstance(a, np.ndarray):
            return a
        return asarray(a, like=where, dtype="float64" if a.dtype.kind == "f" else None)

    def call(model: Any, values: list[Any]) -> Any:
        moved: dict[int, Any] = {}
        args = [moved.setdefault(id(v), on_backend(v)) for v in values]
        return model(*_rebuild(inputs, args))

    def scalar(model: Any, values: list[Any]) -> float:
        with no_grad():  # a finite difference needs values only
            out = call(model, values)
        if upstream is None:  # a reduced loss: its value
            return float(to_host(out))
        if isinstance(out, tuple) and base.outputs_without_grad:
            out = tuple(None if i in base.outputs_without_grad else part for i, part in enumerate(out))
        return float(sum(np.sum(to_host(leaf) * up) for leaf, up in zip(_leaves(out), upstream)))

    # analytic: S = value for a reduced loss, else Σ upstream · output
    model: Any = copy.deepcopy(base)
    out = call(model, host_leaves)
    if isinstance(out, tuple) and base.outputs_without_grad:  # outputs for inspection only (attention weights)
        out = tuple(None if i in base.outputs_without_grad else part for i, part in enumerate(out))
    if is_loss and out.ndim == 0:
        returned = model.backward()
    else:
        draw = np.random.default_rng(seed)
        upstream = [draw.standard_normal(tuple(leaf.shape)) for leaf in _leaves(out)]
        returned = model.backward(_like_output(out, [on_backend(u) for u in upstream]))
    grads = [returned] if is_loss else _input_grads(returned, inputs)
    names = {i: "input" if len(checked) == 1 and len(leaves) == 1 else f"input{i}" for i in checked}
    results: dict[str, tuple] = {}

    # numeric, inputs: each leaf perturbed on its own
    for i in checked:
        x_host = host_leaves[i]
        analytic = np.zeros(x_host.shape) if grads[i] is None else np.array(to_host(grads[i]), dtype=np.float64)
        num = np.zeros_like(x_host)
        for index in np.ndindex(x_host.shape):
            evals = []
            for step in (eps, -eps):
                shifted = x_host.copy()
                shifted[index] += step
                values = list(host_leaves)
                values[i] = shifted
                evals.append(scalar(copy.deepcopy(base), values))
            num[index] = (evals[0] - evals[1]) / (2 * eps)
        results[names[i]] = (analytic, num)

    # numeric, parameters
    analytic_params = {
        name: np.zeros(p.shape) if p.grad is None else np.array(to_host(p.grad), dtype=np.float64)
        for name, p in model.named_parameters()
    }
    for name, p in base.named_parameters():
        theta = np.array(to_host(p.data), dtype=np.float64)
        num = np.zeros_like(theta)
        for index in np.ndindex(theta.shape):
            evals = []
            for step in (eps, -eps):
                trial = copy.deepcopy(base)
                shifted = theta.copy()
                shifted[index] += step
                dict(trial.named_parameters())[name].data = on_backend(shifted)
                evals.append(scalar(trial, host_leaves))
            num[index] = (evals[0] - evals[1]) / (2 * eps)
        results[name] = (analytic_params[name], num)
    return results


def gradcheck(layer_or_loss: Layer, *inputs: Any, eps: float = 1e-6, seed: int = 0) -> float:
    """Largest relative error between ``backward`` and central finite differences (float64).

    Parameters
    ----------
    layer_or_loss : Layer or Loss
        The object to check; it is not modified (a float64 copy is used).
    *inputs : arrays
        ``x`` for a layer, or every input of a layer that takes several
        (``query, key, value`` for attention; ``x, hx`` for a recurrent layer,
        ``hx`` a pair for LSTM), positionally as ``forward`` takes them;
        ``(pred, target)`` for a loss. For a layer with parameters they are
        moved to its backend, otherwise they stay where they are. Every
        floating input is checked (integer and boolean ones, such as indices
        and masks, are passed as they are); ``backward`` must return one
        gradient per input (a tuple when there are several).
    eps : float
        Finite-difference step ``h``.
    seed : int
        Seed of the random upstream gradient ``g`` for layers.

    Returns
    -------
    float
        ``max`` over the input and every parameter of
        ``max|analytic - numeric| / max(max|analytic|, max|numeric|, 1)``;
        around 1e-9 for a correct backward.

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> layer = nu_xp.Linear(3, 2, seed=0)
    >>> nu_xp.gradcheck(layer, np.random.default_rng(0).normal(size=(4, 3))) < 1e-6
    True
    """
    pairs = numeric_gradients(layer_or_loss, *inputs, eps=eps, seed=seed)
    return max(_relative_error(a, n) for a, n in pairs.values())
