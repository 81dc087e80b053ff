"""Check a layer's or loss's ``backward`` against central finite differences.

For a layer ``f`` with input ``x`` and parameters ``θ``, pick a fixed random
upstream gradient ``g`` and the scalar ``S = Σ g · f(x)``; then ``dS/dx`` is
exactly what ``backward(g)`` returns, and ``dS/dθ`` what it accumulates in
``θ.grad``. Each partial derivative is also estimated numerically::

    dS/dx_i ≈ (S(x + h e_i) - S(x - h e_i)) / (2h)

A layer whose output is a tuple (``LSTM``'s ``(output, (h_n, c_n))``) gets
one random upstream array per array in it, ``S`` sums over all of them, and
``backward`` receives the same structure. For a loss ``L(pred, target)``, ``S`` is the loss value and only ``pred`` is
differentiated. Everything runs on a float64 deep copy of the object, on its
own backend; every evaluation starts from a fresh copy, so stochastic layers
such as Dropout draw the same mask each time.

The error of one gradient is ``max|analytic - numeric| / max(max|analytic|,
max|numeric|, 1)``: relative for gradients of size 1 and more, absolute below
(as ``numpy.allclose`` with ``rtol == atol``), because a central difference
cannot resolve a derivative much smaller than its rounding noise
(≈ 1e-16·|S|/h). ``gradcheck`` returns the largest error over the input
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


def numeric_gradients(layer_or_loss: Any, *inputs: Any, eps: float = 1e-6, seed: int = 0) -> dict[str, tuple]:
    """``{name: (analytic, numeric)}`` host float64 arrays for ``"input"`` and each parameter.

    See [`gradcheck`][nu_xp.gradcheck]; this returns the arrays themselves for inspection.
    """
    if not isinstance(layer_or_loss, Layer):
        raise TypeError(f"gradcheck takes a Layer or a Loss, got {type(layer_or_loss).__name__}")
    is_loss = layer_or_loss.is_loss
    if len(inputs) != (2 if is_loss else 1):
        want = "(pred, target)" if is_loss else "(x,)"
        raise TypeError(f"gradcheck({type(layer_or_loss).__name__}, ...) takes inputs {want}, got {len(inputs)}")
    if not hasattr(inputs[0], "shape"):
        raise TypeError("gradcheck inputs must be arrays; convert with nu_xp.asarray(x, like=layer)")
    base = _float64_copy(layer_or_loss, inputs[0])
    base.zero_grad()  # measure the layer, not the gradients the caller's model already holds
    # inputs go where the parameters are (a layer with none computes where its input lives)
    where = base.backend if base.parameters() else inputs[0]
    integer = np.asarray(to_host(inputs[0])).dtype.kind in "iu"  # indices (Embedding): no input gradient
    x_host = np.array(to_host(inputs[0]), dtype=None if integer else np.float64)
    other = inputs[1] if is_loss else None
    if other is not None and np.asarray(to_host(other)).dtype.kind == "f":
        other = asarray(other, like=where, dtype="float64")
    upstream = None

    def on_backend(a: np.ndarray) -> Any:
        return asarray(a, like=where, dtype=None if a.dtype.kind in "iu" else "float64")

    def scalar(model: Any, x_arr: np.ndarray) -> float:
        with no_grad():  # a finite difference needs values only
            out = model(on_backend(x_arr), other) if is_loss else model(on_backend(x_arr))
        if upstream is None:  # a reduced loss: its value
            return float(to_host(out))
        return float(sum(np.sum(to_host(leaf) * up) for leaf, up in zip(_leaves(out), upstream)))

    # analytic: S = value for a reduced loss, else Σ upstream · output
    model: Any = copy.deepcopy(base)
    out = model(on_backend(x_host), other) if is_loss else model(on_backend(x_host))
    if is_loss and out.ndim == 0:
        dx = model.backward()
    else:
        draw = np.random.default_rng(seed)
        upstream = [draw.standard_normal(tuple(leaf.shape)) for leaf in _leaves(out)]
        dx = model.backward(_like_output(out, [on_backend(u) for u in upstream]))
    results: dict[str, tuple] = {}
    analytic = {} if integer else {"input": np.array(to_host(dx), dtype=np.float64)}
    for name, p in model.named_parameters().items():
        grad = np.zeros(p.shape) if p.grad is None else np.array(to_host(p.grad), dtype=np.float64)
        analytic[name] = grad

    # numeric, input
    if not integer:
        num = np.zeros_like(x_host)
        for i in np.ndindex(x_host.shape):
            plus, minus = x_host.copy(), x_host.copy()
            plus[i] += eps
            minus[i] -= eps
            num[i] = (scalar(copy.deepcopy(base), plus) - scalar(copy.deepcopy(base), minus)) / (2 * eps)
        results["input"] = (analytic["input"], num)

    # numeric, parameters
    for name, p in base.named_parameters().items():
        values = np.array(to_host(p.data), dtype=np.float64)
        num = np.zeros_like(values)
        for i in np.ndindex(values.shape):
            evals = []
            for step in (eps, -eps):
                trial = copy.deepcopy(base)
                shifted = values.copy()
                shifted[i] += step
                trial.named_parameters()[name].data = on_backend(shifted)
                evals.append(scalar(trial, x_host))
            num[i] = (evals[0] - evals[1]) / (2 * eps)
        results[name] = (analytic[name], num)
    return results


def gradcheck(layer_or_loss: Layer, *inputs: Any, eps: float = 1e-6, seed: int = 0) -> float:
    """Largest relative error between ``backward`` and central finite differences (float64).

    Parameters
    ----------
    layer_or_loss : Layer or Loss
        The object to check; it is not modified (a float64 copy is used).
    *inputs : arrays
        ``x`` for a layer, ``(pred, target)`` for a loss; for a layer with
        parameters they are moved to its backend, otherwise they stay where they are.
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
