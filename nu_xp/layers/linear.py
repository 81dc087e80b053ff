"""``Linear``: the fully connected layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import Backend
from ..initializers import check_init, host_rng, initial_weights
from ..validation import check_positive_int
from .base import Layer, check_grad
from .parameter import Parameter, accumulate
from .registry import register_layer

__all__ = ["Linear"]


@register_layer
class Linear(Layer):
    """Fully connected layer: ``y = x @ W.T + b``.

    ``W`` has shape ``(out_features, in_features)`` and ``b`` shape
    ``(out_features,)``, the layout of ``torch.nn.Linear``. For ``x`` of shape
    ``(N, in)`` and ``g = dL/dy`` of shape ``(N, out)``, since
    ``y_nj = Σ_i x_ni W_ji + b_j``::

        dL/dW = g.T @ x        dL/db = sum(g, axis=0)        dL/dx = g @ W

    Inputs with more leading dimensions ``(*, in)`` are flattened to 2-D and back.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of each input and output sample.
    bias : bool, default True
        Whether to learn ``b``.
    init : str, default "auto"
        Weight scheme (see [`nu_xp.initializers`][nu_xp.initializers]): ``"auto"`` is PyTorch's
        default uniform; also ``"xavier_uniform"``, ``"xavier_normal"``,
        ``"he_uniform"``, ``"he_normal"``, ``"zeros"``.
    seed : int or None
        Seed of the host generator; the same seed gives bit-identical weights
        on every backend. None: the global generator ([`nu_xp.manual_seed`][nu_xp.initializers.manual_seed]).
    backend, device, dtype :
        Where the parameters live; None: the current default.

    Examples
    --------
    >>> import nu_xp
    >>> layer = nu_xp.Linear(3, 2, seed=0)
    >>> layer(nu_xp.asarray([[1.0, 2.0, 3.0]])).shape
    (1, 2)
    """

    _backend: Backend  # always set by Layer.__init__

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        init: str = "auto",
        seed: int | None = None,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        self.parameter_shapes({"in_features": in_features, "out_features": out_features, "bias": bias})
        check_init(init)
        super().__init__(backend=backend, device=device, dtype=dtype)
        be = self.backend
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.init = init
        w, b = initial_weights(init, self.in_features, self.out_features, host_rng(seed), be.dtype_name)
        self.weight = Parameter(be.from_host(w))
        self.bias = Parameter(be.from_host(b)) if bias else None

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """``{"weight": (out, in), "bias": (out,)}`` (no bias without ``bias``); checks the sizes."""
        n_in = check_positive_int("in_features", config.get("in_features"))
        n_out = check_positive_int("out_features", config.get("out_features"))
        bias = config.get("bias", True)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        return {"weight": (n_out, n_in), **({"bias": (n_out,)} if bias else {})}

    def get_config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "init": self.init,
        }

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def forward(self, x: Any) -> Any:
        be = self._backend
        x = be.check(x)  # the parameters' backend, device and dtype: passes, cast, or a clear TypeError
        lead = None
        if x.ndim != 2 or x.shape[1] != self.in_features:
            if x.ndim == 0 or x.shape[-1] != self.in_features:
                raise ValueError(
                    f"Linear({self.in_features}, {self.out_features}) expects input of shape "
                    f"(N, {self.in_features}), got {tuple(x.shape)}"
                )
            lead = tuple(x.shape[:-1])
            x = be.xp.reshape(x, (-1, self.in_features))
        # one input feature: an outer product, as a broadcast product (the same numbers: one term per sum);
        # BLAS takes ~3 µs to set up a 32 × 1 × 64 product that the product of arrays does in 0.7
        y = x @ self.weight.data.T if self.in_features != 1 else x * self.weight.data.T
        if self.bias is not None:
            y += self.bias.data  # in place (one temporary fewer); a new array where arrays are immutable (JAX)
        self.save_for_backward(x, lead, y.shape)
        return y if lead is None else be.xp.reshape(y, (*lead, self.out_features))

    def backward(self, grad: Any, *, input_grad: bool = True) -> Any:
        """Accumulate ``dL/dW = g.T @ x`` and ``dL/db = Σ g``; return ``dL/dx = g @ W``.

        ``input_grad=False`` skips ``g @ W`` (returns None): the first layer of a
        model never needs it, and it costs as much as the weight gradient. A
        frozen parameter (``requires_grad=False``) skips its own product.
        """
        x, lead, shape2d = self.saved_tensors()
        be = self._backend
        out_shape = shape2d if lead is None else (*lead, self.out_features)
        grad = check_grad(self, grad, out_shape, be)
        ops = be.ops
        if lead is not None:
            grad = ops.xp.reshape(grad, (-1, self.out_features))
        if self.weight.requires_grad:  # a frozen weight costs no GEMM
            accumulate(self.weight, grad.T @ x)
        if self.bias is not None and self.bias.requires_grad:
            accumulate(self.bias, ops.sum(grad, axis=0))
        if not input_grad:
            return None
        dx = grad @ self.weight.data
        return dx if lead is None else ops.xp.reshape(dx, (*lead, self.in_features))
