"""``TransformerEncoderLayer``: self-attention and a feed-forward block, each with a residual and a LayerNorm.

It is built from layers that each state their own backward
([`MultiheadAttention`][nu_xp.layers.attention.MultiheadAttention], [`Linear`][nu_xp.layers.linear.Linear],
[`LayerNorm`][nu_xp.layers.normalization.LayerNorm], [`Dropout`][nu_xp.layers.dropout.Dropout], an activation);
its own backward is the chain rule over the two residual sums, where the
gradient splits in two and adds back up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import Backend
from ..initializers import host_rng
from ..validation import check_number, check_positive_int
from .activations import GELU, ReLU
from .attention import MultiheadAttention
from .base import Layer
from .dropout import Dropout
from .linear import Linear
from .normalization import LayerNorm
from .registry import register_layer

__all__ = ["TransformerEncoderLayer"]


@register_layer
class TransformerEncoderLayer(Layer):
    """One Transformer encoder block, as ``torch.nn.TransformerEncoderLayer``.

    With ``SA(x)`` = dropout1(self_attn(x, x, x)) and ``FF(x)`` =
    dropout2(linear2(dropout(act(linear1(x))))), the forward is::

        norm_first=False (post-norm, the default):  x = norm1(x + SA(x));   y = norm2(x + FF(x))
        norm_first=True  (pre-norm, GPT's):         x = x + SA(norm1(x));   y = x + FF(norm2(x))

    Backward, for a residual ``z = x + f(x)``: ``dL/dx = g + J_fᵀ g`` —
    the gradient takes both paths and they add. Both directions read one
    plan of the block (``_plan``: the sub-layers and the residual branches in
    forward order), so the backward is the plan run in reverse, never a second
    hand-written copy of the forward.

    Parameters
    ----------
    d_model, nhead : int
        Width of the tokens and number of attention heads.
    dim_feedforward : int, default 2048
        Width of the feed-forward block's hidden layer.
    dropout : float, default 0.1
        Dropout in the attention weights, after each block and inside the feed-forward block.
    activation : {"relu", "gelu"}, default "relu"
    layer_norm_eps : float, default 1e-5
    batch_first : bool, default False
        ``(N, L, E)`` instead of ``(L, N, E)``.
    norm_first : bool, default False
        Pre-norm instead of post-norm.
    bias : bool, default True
        Biases in the linear layers and the norms.
    causal : bool, default False
        (nu_xp) every call is causal — token ``t`` sees tokens ``≤ t`` — so the
        layer composes in a ``Sequential``; a mask given to ``forward`` applies as well.
    seed, backend, device, dtype :
        Initial values and where the parameters live.

    Notes
    -----
    Sub-layers carry PyTorch's names (``self_attn``, ``linear1``, ``linear2``, ``norm1``,
    ``norm2``), so a ``state_dict`` moves between the two unchanged.

    Examples
    --------
    >>> import nu_xp, numpy as np
    >>> block = nu_xp.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True, causal=True, seed=0)
    >>> block(nu_xp.asarray(np.zeros((2, 7, 16), dtype="float32"))).shape
    (2, 7, 16)
    """

    _backend: Backend

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        *,
        causal: bool = False,
        seed: int | None = None,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        config = {
            "d_model": d_model,
            "nhead": nhead,
            "dim_feedforward": dim_feedforward,
            "bias": bias,
            "activation": activation,
            "batch_first": batch_first,
            "norm_first": norm_first,
            "causal": causal,
        }
        self.parameter_shapes(config)
        super().__init__(backend=backend, device=device, dtype=dtype)
        be = self.backend
        where = {"backend": be.name, "device": be.device, "dtype": be.dtype_name}
        self.d_model, self.nhead, self.dim_feedforward = int(d_model), int(nhead), int(dim_feedforward)
        self.dropout_p = check_number("dropout", dropout, 0.0, 1.0)
        self.activation, self.layer_norm_eps = activation, check_number("layer_norm_eps", layer_norm_eps, 0.0)
        self.batch_first, self.norm_first, self.bias, self.causal = (
            bool(batch_first),
            bool(norm_first),
            bool(bias),
            bool(causal),
        )
        rng = host_rng(seed)

        def seed_() -> int:
            return int(rng.integers(2**31))

        d, f = self.d_model, self.dim_feedforward
        self.self_attn = MultiheadAttention(d, self.nhead, self.dropout_p, bias, batch_first, seed=seed_(), **where)
        self.linear1 = Linear(d, f, bias, seed=seed_(), **where)
        self.dropout = Dropout(self.dropout_p, seed=seed_())
        self.linear2 = Linear(f, d, bias, seed=seed_(), **where)
        self.norm1 = LayerNorm(d, eps=self.layer_norm_eps, bias=bias, **where)
        self.norm2 = LayerNorm(d, eps=self.layer_norm_eps, bias=bias, **where)
        self.dropout1 = Dropout(self.dropout_p, seed=seed_())
        self.dropout2 = Dropout(self.dropout_p, seed=seed_())
        self.activation_layer = GELU() if activation == "gelu" else ReLU()

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The sub-layers' parameters under PyTorch's names (``self_attn.in_proj_weight``, ``linear1.weight``…)."""
        d = check_positive_int("d_model", config.get("d_model"))
        f = check_positive_int("dim_feedforward", config.get("dim_feedforward", 2048))
        activation = config.get("activation", "relu")
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        for name in ("batch_first", "norm_first", "causal"):
            if not isinstance(config.get(name, False), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {config.get(name)!r}")
        bias = config.get("bias", True)
        shapes = {
            f"self_attn.{k}": v
            for k, v in MultiheadAttention.parameter_shapes(
                {"embed_dim": d, "num_heads": config.get("nhead"), "bias": bias}
            ).items()
        }
        shapes.update({"linear1.weight": (f, d), "linear2.weight": (d, f)})
        if bias:
            shapes.update({"linear1.bias": (f,), "linear2.bias": (d,)})
        shapes.update({"norm1.weight": (d,), "norm2.weight": (d,)})
        if bias:
            shapes.update({"norm1.bias": (d,), "norm2.bias": (d,)})
        return shapes

    def get_config(self) -> dict[str, Any]:
        return {
            "d_model": self.d_model,
            "nhead": self.nhead,
            "dim_feedforward": self.dim_feedforward,
            "dropout": self.dropout_p,
            "activation": self.activation,
            "layer_norm_eps": self.layer_norm_eps,
            "batch_first": self.batch_first,
            "norm_first": self.norm_first,
            "bias": self.bias,
            "causal": self.causal,
        }

    def extra_repr(self) -> str:
        text = f"d_model={self.d_model}, nhead={self.nhead}"
        defaults = {
            "dim_feedforward": 2048,
            "dropout": 0.1,
            "activation": "relu",
            "layer_norm_eps": 1e-5,
            "batch_first": False,
            "norm_first": False,
            "bias": True,
            "causal": False,
        }
        for name, value in self.get_config().items():
            if name in defaults and value != defaults[name]:
                text += f", {name}={value!r}"
        return text

    # ------------------------------------------------------------------ forward and backward
    def _plan(self) -> tuple[tuple[str, ...] | str, ...]:
        """The block as data, read by both ``forward`` and ``backward``: a name is a sub-layer applied to
        ``x``, a tuple of names a residual branch ``x + f(x)`` with ``f`` those sub-layers in order."""
        if self.norm_first:
            return (("norm1", *_ATTENTION), ("norm2", *_FEED_FORWARD))
        return (_ATTENTION, "norm1", _FEED_FORWARD, "norm2")

    def forward(self, src: Any, src_mask: Any = None, src_key_padding_mask: Any = None, is_causal: bool = False) -> Any:
        """The block's output, of the shape of ``src`` (masks as in
        [`MultiheadAttention.forward`][nu_xp.layers.attention.MultiheadAttention.forward])."""
        x = self._backend.check(src, role="TransformerEncoderLayer src")
        masks = {
            "key_padding_mask": src_key_padding_mask,
            "need_weights": False,
            "attn_mask": src_mask,
            "is_causal": self.causal or bool(is_causal),
        }
        for step in self._plan():
            x = x + self._run(step, x, masks) if isinstance(step, tuple) else self._run((step,), x, masks)
        return x

    def _run(self, names: tuple[str, ...], x: Any, masks: dict[str, Any]) -> Any:
        for name in names:
            layer = getattr(self, name)
            x = layer(x, **masks)[0] if name == "self_attn" else layer(x)  # self-attention: the query alone
        return x

    def backward(self, grad: Any) -> Any:
        """``dL/dsrc``: the plan backwards; a residual branch passes ``g + J_fᵀ g`` (both paths add)."""
        for step in reversed(self._plan()):
            grad = grad + self._run_back(step, grad) if isinstance(step, tuple) else self._run_back((step,), grad)
        return grad

    def _run_back(self, names: tuple[str, ...], grad: Any) -> Any:
        for name in reversed(names):
            grad = getattr(self, name).backward(grad)
        return grad


#: the self-attention branch and the feed-forward branch, as sub-layer names in forward order
_ATTENTION = ("self_attn", "dropout1")
_FEED_FORWARD = ("linear1", "activation_layer", "dropout", "linear2", "dropout2")
