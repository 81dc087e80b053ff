"""``MultiheadAttention``: scaled dot-product attention over several heads, as ``torch.nn.MultiheadAttention``.

Forward, for queries ``q`` ``(N, L, E)``, keys ``k`` and values ``v`` ``(N, S, E)``,
``h`` heads of width ``d = E / h``::

    Q = q W_q.T + b_q      K = k W_k.T + b_k      V = v W_v.T + b_v     (split into h heads)
    A = Q Kᵀ / √d + M      P = softmax(A)  (over the keys)      O = P V
    y = concat_heads(O) W_o.T + b_o

``M`` is the mask: 0 where a query may look at a key and −∞ where it may not
(boolean masks: True = not allowed), or any float added as given.

Why ``1/√d``: with entries of ``Q`` and ``K`` of unit variance, a dot product
of ``d`` terms has variance ``d``; dividing by ``√d`` brings the scores back to
unit scale, so the softmax does not saturate (where its gradient vanishes) as
the heads get wider.

Backward, for ``g = dL/dy``, ``G = dL/dO`` (``g W_o``, split into heads)::

    dV = Pᵀ G        dP = G Vᵀ
    dA = P ⊙ (dP − Σ_keys dP ⊙ P)          (the softmax's Jacobian, row by row)
       = P ⊙ (dP − Σ_d G ⊙ O)              (Σ_keys (G Vᵀ) ⊙ P = Σ_d G ⊙ (P V): d numbers a row, not S)
    dQ = dA K / √d   dK = dAᵀ Q / √d

and the projections' gradients as in [`Linear`][nu_xp.layers.linear.Linear]. With
dropout on the weights, ``O = (P ⊙ m) V`` and the mask ``m`` multiplies
``dP`` on the way back. A row whose keys are all masked has weights 0 and
output ``b_o`` here (PyTorch gives NaN there).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..backends import Backend, asarray, dtype_kind
from ..initializers import host_rng
from ..validation import check_bool, check_number, check_positive_int
from .base import Layer, check_grad
from .dropout import dropout_mask
from .linear import Linear
from .parameter import Parameter, accumulate
from .registry import register_layer

__all__ = ["MultiheadAttention", "causal_mask"]


def causal_mask(be: Backend, length: int, source: int | None = None) -> Any:
    """Boolean ``(length, source)`` mask, True above the diagonal: query ``i`` may not look at key ``j > i``."""
    xp = be.xp
    rows = xp.arange(length, device=be.device)[:, None]
    cols = xp.arange(length if source is None else source, device=be.device)[None, :]
    return cols > rows


@register_layer
class MultiheadAttention(Layer):
    """Multi-head attention ``y = concat_h(softmax(Q_h K_hᵀ/√d + M) V_h) W_o.T + b_o``, as ``torch.nn``'s.

    See [`nu_xp.layers.attention`][nu_xp.layers.attention] for the forward and backward formulas.
    Parameters ``in_proj_weight`` ``(3E, E)`` (rows: W_q, W_k, W_v),
    ``in_proj_bias`` ``(3E,)``, ``out_proj.weight`` ``(E, E)``, ``out_proj.bias``
    ``(E,)``, initialized as PyTorch does (Xavier-uniform ``in_proj_weight``, zero biases).

    Parameters
    ----------
    embed_dim : int
        ``E``, the width of queries, keys, values and output.
    num_heads : int
        ``h``; must divide ``embed_dim``.
    dropout : float, default 0
        Dropout on the attention weights, in training.
    bias : bool, default True
        Whether the projections have biases.
    batch_first : bool, default False
        ``(N, L, E)`` instead of ``(L, N, E)``; unbatched ``(L, E)`` works either way.
    seed, backend, device, dtype :
        Initial values and where the parameters live.

    Notes
    -----
    ``forward(query, key=None, value=None, ...)``: key and value default to the
    query (self-attention), so ``MultiheadAttention`` can sit in a
    ``Sequential`` (followed by ``Select(0)``); then ``backward`` returns
    ``dL/dx`` alone. ``is_causal=True`` builds the causal mask itself (PyTorch
    needs ``attn_mask`` too and takes ``is_causal`` as a hint); a mask given as
    well applies too.

    Examples
    --------
    >>> import nu_xp, numpy as np
    >>> mha = nu_xp.MultiheadAttention(8, 2, batch_first=True, seed=0)
    >>> x = nu_xp.asarray(np.ones((3, 5, 8), dtype="float32"))
    >>> out, weights = mha(x, x, x)
    >>> out.shape, weights.shape
    ((3, 5, 8), (3, 5, 5))
    """

    _backend: Backend
    outputs_without_grad = (1,)  # the attention weights are for inspection

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        *,
        seed: int | None = None,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        self.parameter_shapes({"embed_dim": embed_dim, "num_heads": num_heads, "bias": bias})
        super().__init__(backend=backend, device=device, dtype=dtype)
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = check_number("dropout", dropout, 0.0, 1.0)
        self.bias, self.batch_first = check_bool("bias", bias), check_bool("batch_first", batch_first)
        rng = host_rng(seed)
        be = self.backend
        e = self.embed_dim
        bound = math.sqrt(6.0 / (e + 3 * e))  # Xavier-uniform for a (3E, E) matrix
        self.in_proj_weight = Parameter(be.from_host(rng.uniform(-bound, bound, (3 * e, e)).astype(be.dtype_name)))
        self.in_proj_bias = Parameter(be.from_host(np.zeros(3 * e, be.dtype_name))) if bias else None
        self.out_proj = Linear(e, e, bias=bias, seed=int(rng.integers(2**31)), backend=be.name, device=be.device,
                               dtype=be.dtype_name)  # fmt: skip
        if self.out_proj.bias is not None:
            self.out_proj.bias.data = be.from_host(np.zeros(e, be.dtype_name))
        self._rng = host_rng(int(rng.integers(2**63)))

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """``in_proj_weight (3E, E)``, ``in_proj_bias (3E,)``, ``out_proj.weight (E, E)``, ``out_proj.bias (E,)``."""
        e = check_positive_int("embed_dim", config.get("embed_dim"))
        h = check_positive_int("num_heads", config.get("num_heads"))
        if e % h:
            raise ValueError(f"embed_dim ({e}) must be divisible by num_heads ({h})")
        bias = config.get("bias", True)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        shapes: dict[str, tuple[int, ...]] = {"in_proj_weight": (3 * e, e), "out_proj.weight": (e, e)}
        if bias:
            shapes.update({"in_proj_bias": (3 * e,), "out_proj.bias": (e,)})
        return shapes

    def get_config(self) -> dict[str, Any]:
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "bias": self.bias,
            "batch_first": self.batch_first,
        }

    def extra_repr(self) -> str:
        text = f"{self.embed_dim}, {self.num_heads}"
        for name, default in (("dropout", 0.0), ("bias", True), ("batch_first", False)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)!r}"
        return text

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        query: Any,
        key: Any = None,
        value: Any = None,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Any, Any]:
        """``(attn_output, attn_weights or None)``, as PyTorch returns them.

        ``attn_weights`` are ``(N, L, S)`` averaged over heads (``(N, h, L, S)`` with
        ``average_attn_weights=False``), after dropout; no gradient flows back through them.
        ``key_padding_mask`` ``(N, S)``: True (or −∞) for keys to ignore; ``attn_mask`` ``(L, S)`` or
        ``(N·h, L, S)``: True (or −∞) where a query may not look; a float mask is added to the scores.
        """
        be = self._backend
        xp = be.xp
        single = key is None and value is None
        if single:
            key = value = query
        elif key is None or value is None:
            raise TypeError("MultiheadAttention takes query, key and value (or the query alone for self-attention)")
        same = single or (key is query and value is query)
        q = be.check(query, role="MultiheadAttention query")
        k = q if same else be.check(key, role="MultiheadAttention key")
        v = q if same else be.check(value, role="MultiheadAttention value")
        batched = q.ndim == 3
        q, k, v = (self._to_batch_first(a, name, batched) for a, name in ((q, "query"), (k, "key"), (v, "value")))
        n, length, e = q.shape
        source = k.shape[1]
        if k.shape[0] != n or v.shape[0] != n or v.shape[1] != source:
            raise ValueError(
                f"MultiheadAttention: query, key and value must share the batch size and key and value the "
                f"length, got query {tuple(q.shape)}, key {tuple(k.shape)}, value {tuple(v.shape)} (batch first)"
            )
        heads = self._project_in(q, k, v, same)
        mask = self._mask(key_padding_mask, attn_mask, is_causal, n, length, source, batched)
        p, p_used, drop, heads_o = self._attend(heads, mask)
        merged = xp.reshape(xp.permute_dims(heads_o, (0, 2, 1, 3)), (n, length, e))
        out = self.out_proj.forward(merged)
        self.save_for_backward(_Kept((q, k, v), same, single, batched, heads, p, p_used, drop, merged))
        weights = None
        if need_weights:
            weights = xp.mean(p_used, axis=1) if average_attn_weights else p_used
            if not batched:
                weights = weights[0, ...]
        return self._from_batch_first(out, batched), weights

    def _project_in(self, q: Any, k: Any, v: Any, same: bool) -> _Heads:
        """``Q/√d, K, V`` split into heads ``(N, h, ·, d)``: one product ``x W_inᵀ`` when q, k, v are one array.

        ``1/√d`` scales ``W_q`` and ``b_q`` (``E × E`` numbers) rather than ``Q`` (``N L E``)."""
        xp = self._backend.xp
        n, length, e = q.shape
        source = k.shape[1]
        h, d = self.num_heads, self.head_dim
        w, b = self._scaled_in_proj()
        if same:
            qkv = xp.reshape(q, (n * length, e)) @ w.T
            if b is not None:
                qkv += b  # in place (one temporary fewer); a new array where arrays are immutable (JAX)
            qp, kp, vp = qkv[:, :e], qkv[:, e : 2 * e], qkv[:, 2 * e :]
        else:
            qp, kp, vp = (
                self._project(xp.reshape(a, (a.shape[0] * a.shape[1], e)), w, b, part)
                for part, a in enumerate((q, k, v))
            )
        return _Heads(
            _split_heads(xp, qp, n, length, h, d),
            _split_heads(xp, kp, n, source, h, d),
            _split_heads(xp, vp, n, source, h, d),
        )

    def _scaled_in_proj(self) -> tuple[Any, Any]:
        """``W_in`` and ``b_in`` (or None) with the query rows scaled by ``1/√d``."""
        xp = self._backend.xp
        e, scale = self.embed_dim, 1.0 / math.sqrt(self.head_dim)
        w = self.in_proj_weight.data
        w = xp.concat([w[:e, :] * scale, w[e:, :]], axis=0)
        if self.in_proj_bias is None:
            return w, None
        b = self.in_proj_bias.data
        return w, xp.concat([b[:e] * scale, b[e:]], axis=0)

    def _attend(self, heads: _Heads, mask: Any) -> tuple[Any, Any, Any, Any]:
        """``(P, P after dropout, the dropout mask or None, O = P V)`` for the heads and the additive mask."""
        be = self._backend
        xp = be.xp
        scores = heads.q @ xp.permute_dims(heads.k, (0, 1, 3, 2))  # (N, h, L, S)
        p = be.ops.masked_softmax(scores, mask)  # over the keys of scores + mask; a row of -inf only gets zeros
        drop = None
        p_used = p
        if self.training and self.dropout > 0.0:
            drop = be.from_host(dropout_mask(self._rng, tuple(p.shape), self.dropout), dtype=be.dtype)
            p_used = p * drop
        return p, p_used, drop, p_used @ heads.v  # O: (N, h, L, d)

    def _project(self, x2d: Any, w: Any, b: Any, part: int) -> Any:
        e = self.embed_dim
        y = x2d @ w[part * e : (part + 1) * e, :].T
        if b is not None:
            y += b[part * e : (part + 1) * e]
        return y

    def _to_batch_first(self, a: Any, name: str, batched: bool) -> Any:
        xp = self._backend.xp
        if a.ndim != (3 if batched else 2) or a.shape[-1] != self.embed_dim:
            layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
            raise ValueError(
                f"MultiheadAttention({self.embed_dim}, {self.num_heads}): {name} must be {layout} or unbatched "
                f"(L, E) with E={self.embed_dim}, like the query; got {tuple(a.shape)}"
            )
        if not batched:
            return xp.expand_dims(a, axis=0)
        return a if self.batch_first else xp.permute_dims(a, (1, 0, 2))

    def _from_batch_first(self, a: Any, batched: bool) -> Any:
        if not batched:
            return a[0, ...]
        return a if self.batch_first else self._backend.xp.permute_dims(a, (1, 0, 2))

    def _mask(
        self,
        key_padding_mask: Any,
        attn_mask: Any,
        is_causal: bool,
        n: int,
        length: int,
        source: int,
        batched: bool,
    ) -> Any:
        """The additive mask ``M``, broadcastable to ``(N, h, L, S)``, or None."""
        be = self._backend
        xp = be.xp
        h = self.num_heads
        total = None
        if key_padding_mask is not None:
            want = (n, source) if batched else (source,)
            m = self._additive(key_padding_mask, "key_padding_mask", [want], "(N, S) (unbatched: (S,))")
            total = xp.reshape(m, (n, 1, 1, source))
        if attn_mask is not None:
            wants = [(length, source), (n * h, length, source) if batched else (h, length, source)]
            m = self._additive(attn_mask, "attn_mask", wants, "(L, S) or (N·num_heads, L, S)")
            m = xp.reshape(m, (1, 1, length, source) if m.ndim == 2 else (n, h, length, source))
            total = m if total is None else total + m
        if is_causal:
            if length != source:
                raise ValueError(f"is_causal=True needs as many queries as keys, got L={length}, S={source}")
            m = self._additive(causal_mask(be, length), "is_causal", [(length, length)], "")
            m = xp.reshape(m, (1, 1, length, length))
            total = m if total is None else total + m
        return total

    def _additive(self, mask: Any, name: str, shapes: list[tuple[int, ...]], layout: str) -> Any:
        be = self._backend
        xp = be.xp
        try:
            mask = asarray(mask, like=be)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"MultiheadAttention {name} must be an array: {exc}") from exc
        if tuple(mask.shape) not in shapes:
            raise ValueError(
                f"MultiheadAttention {name} must have shape {' or '.join(map(str, shapes))} {layout} for "
                f"these inputs, got {tuple(mask.shape)}"
            )
        kind = dtype_kind(xp, mask.dtype)
        if kind == "b":
            zeros = xp.zeros(mask.shape, dtype=be.dtype, device=be.device)
            return xp.where(mask, xp.full(mask.shape, -math.inf, dtype=be.dtype, device=be.device), zeros)
        if kind == "f":
            return be.ops.astype(mask, be.dtype)
        raise TypeError(f"MultiheadAttention {name} must be boolean (True = not allowed) or float, got {mask.dtype}")

    # ------------------------------------------------------------------ backward
    def backward(self, grad: Any, *, input_grad: bool = True) -> Any:
        """``(dL/dquery, dL/dkey, dL/dvalue)``; accumulates every parameter's gradient.

        ``grad`` is ``dL/d(attn_output)``, or the pair ``(g, None)`` (the weights
        take no gradient). Called with the query alone (self-attention), it
        returns the sum ``dL/dq + dL/dk + dL/dv`` as one array: the gradient of
        ``x``, which was query, key and value. ``input_grad=False`` skips the
        input gradients (returns None).
        """
        kept: _Kept = self.saved_tensors()[0]
        be = self._backend
        xp = be.xp
        q, k, v = kept.inputs
        n, length, e = q.shape
        source = k.shape[1]
        grad = self._grad_batch_first(grad, n, length, kept.batched)
        g_merged = self.out_proj.backward(grad)  # (N, L, E)
        g_o = xp.permute_dims(xp.reshape(g_merged, (n, length, self.num_heads, self.head_dim)), (0, 2, 1, 3))
        g_q, g_k, g_v = (_merge_heads(xp, g, n, g.shape[2], e) for g in self._attend_backward(kept, g_o, g_merged))
        inputs = [xp.reshape(a, (a.shape[0] * a.shape[1], e)) for a in (q, k, v)]
        self._project_in_backward(inputs, (g_q, g_k, g_v), kept.same)
        if not input_grad:
            return None
        w = self.in_proj_weight.data
        if kept.same:
            dx = xp.concat([g_q, g_k, g_v], axis=1) @ w  # dL/dq + dL/dk + dL/dv in one product
            if kept.single:
                return self._from_batch_first(xp.reshape(dx, (n, length, e)), kept.batched)
        grads = [
            xp.reshape(g @ w[part * e : (part + 1) * e, :], (n, count, e))
            for part, (g, count) in enumerate(((g_q, length), (g_k, source), (g_v, source)))
        ]
        return tuple(self._from_batch_first(g, kept.batched) for g in grads)

    def _grad_batch_first(self, grad: Any, n: int, length: int, batched: bool) -> Any:
        """``dL/d(attn_output)`` checked and laid out as ``(N, L, E)``."""
        xp = self._backend.xp
        if isinstance(grad, (tuple, list)):
            if len(grad) != 2 or grad[0] is None:
                raise ValueError(
                    "MultiheadAttention.backward takes dL/d(attn_output), or (dL/d(attn_output), None): "
                    "no gradient flows through the attention weights"
                )
            grad = grad[0]
        e = self.embed_dim
        out_shape = (length, e) if not batched else ((n, length, e) if self.batch_first else (length, n, e))
        grad = check_grad(self, grad, out_shape, self._backend)
        if not batched:
            return xp.expand_dims(grad, axis=0)
        return grad if self.batch_first else xp.permute_dims(grad, (1, 0, 2))

    def _attend_backward(self, kept: _Kept, g_o: Any, g_merged: Any) -> tuple[Any, Any, Any]:
        """``(dL/dQ, dL/dK, dL/dV)`` per head from ``G = dL/dO`` (the formulas of the module docstring);
        ``g_merged`` is ``G`` with the heads merged, ``(N, L, E)``, as ``kept.o``."""
        xp = self._backend.xp
        heads, p = kept.heads, kept.p
        g_v = xp.permute_dims(kept.p_used, (0, 1, 3, 2)) @ g_o  # Pᵀ G
        g_p = g_o @ xp.permute_dims(heads.v, (0, 1, 3, 2))  # G Vᵀ
        if kept.drop is not None:
            g_p = g_p * kept.drop
        # Σ_keys dP ⊙ P = Σ_keys (G Vᵀ) ⊙ P = Σ_d G ⊙ (P V) = Σ_d G ⊙ O: d numbers a row instead of S (with
        # dropout too: dP's mask times P is P after dropout, whose product with V is O); read with the heads
        # merged, where both arrays are contiguous
        n, length, h, d = g_merged.shape[0], g_merged.shape[1], self.num_heads, self.head_dim
        split = (n, length, h, d)
        dot = xp.vecdot(xp.reshape(g_merged, split), xp.reshape(kept.o, split))  # (N, L, h)
        dot = xp.permute_dims(xp.reshape(dot, (n, length, h, 1)), (0, 2, 1, 3))  # (N, h, L, 1)
        g_a = self._backend.ops.softmax_backward(p, g_p, dot)  # P ⊙ (G_P - rowsum(G_P ⊙ P))
        g_q = (g_a @ heads.k) * (1.0 / math.sqrt(self.head_dim))  # heads.q already holds Q/√d
        g_k = xp.permute_dims(g_a, (0, 1, 3, 2)) @ heads.q
        return g_q, g_k, g_v

    def _project_in_backward(self, inputs: list[Any], grads: tuple[Any, Any, Any], same: bool) -> None:
        """Accumulate ``dL/dW_in = [G_q; G_k; G_v]ᵀ [q; k; v]`` (one product when q, k, v are one array) and b_in."""
        if not self.in_proj_weight.requires_grad and (self.in_proj_bias is None or not self.in_proj_bias.requires_grad):
            return
        xp = self._backend.xp
        if same:
            g_qkv = xp.concat(list(grads), axis=1)  # (N·L, 3E)
            accumulate(self.in_proj_weight, g_qkv.T @ inputs[0])
            if self.in_proj_bias is not None:
                accumulate(self.in_proj_bias, self._backend.ops.sum(g_qkv, axis=0))
            return
        accumulate(self.in_proj_weight, xp.concat([g.T @ x for g, x in zip(grads, inputs)], axis=0))
        if self.in_proj_bias is not None:
            accumulate(self.in_proj_bias, xp.concat([self._backend.ops.sum(g, axis=0) for g in grads], axis=0))


class _Heads(NamedTuple):
    """The projected queries (scaled by ``1/√d``), keys and values, split into heads ``(N, h, ·, d)``."""

    q: Any
    k: Any
    v: Any


class _Kept(NamedTuple):
    """What a forward of ``MultiheadAttention`` keeps for its backward."""

    inputs: tuple[Any, Any, Any]  #: query, key, value, batch first ``(N, ·, E)``
    same: bool  #: one array was query, key and value (one input projection)
    single: bool  #: called with the query alone: backward returns the one gradient dL/dx
    batched: bool  #: the inputs had a batch axis
    heads: _Heads
    p: Any  #: the attention weights ``(N, h, L, S)``
    p_used: Any  #: after dropout
    drop: Any  #: the dropout mask, or None
    o: Any  #: the heads' outputs ``O = P V`` merged, ``(N, L, E)`` (the softmax's backward reads ``Σ_d G ⊙ O``)


def _split_heads(xp: Any, a2d: Any, n: int, length: int, h: int, d: int) -> Any:
    """``(N·L, h·d)`` → ``(N, h, L, d)``."""
    return xp.permute_dims(xp.reshape(a2d, (n, length, h, d)), (0, 2, 1, 3))


def _merge_heads(xp: Any, a: Any, n: int, length: int, e: int) -> Any:
    """``(N, h, L, d)`` → ``(N·L, h·d)``."""
    return xp.reshape(xp.permute_dims(a, (0, 2, 1, 3)), (n * length, e))
