"""``Embedding``: a lookup table of learned vectors, as ``torch.nn.Embedding``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends import Backend, dtype_kind
from ..initializers import host_rng
from ..validation import check_positive_int
from .base import Layer, check_grad
from .parameter import Parameter, accumulate
from .registry import register_layer

__all__ = ["Embedding", "TokenAndPosition"]


@register_layer
class Embedding(Layer):
    """``y[..., :] = W[i[...], :]`` for integer indices ``i`` of any shape → ``(*i.shape, embedding_dim)``.

    ``W`` has shape ``(num_embeddings, embedding_dim)``, drawn from N(0, 1) as
    PyTorch does, with the ``padding_idx`` row zero. Backward: each index adds
    its gradient row into the row it read, ``dL/dW[r] = Σ_{i = r} g_i`` (repeated
    indices add up; the ``padding_idx`` row gets nothing); indices have no
    gradient, so ``backward`` returns None. The standard has no scatter-add:
    [`nu_xp.backends.Ops.index_add`][nu_xp.backends.ops.Ops.index_add] does it with a one-hot matrix product
    where the backend has no native one.

    Parameters
    ----------
    num_embeddings : int
        The number of rows (the vocabulary's size); indices run from 0 to ``num_embeddings - 1``.
    embedding_dim : int
        The width of each row.
    padding_idx : int, optional
        A row that starts at zero and never receives a gradient (negative counts from the end).
    seed : int, optional
        Seed of the host generator that draws the initial values (the same on every backend).
    backend, device, dtype : optional
        Where the parameters live, as for every [`Layer`][nu_xp.layers.base.Layer] (default: the current backend).
    """

    takes_indices = True
    _backend: Backend

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        seed: int | None = None,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        self.parameter_shapes(
            {"num_embeddings": num_embeddings, "embedding_dim": embedding_dim, "padding_idx": padding_idx}
        )
        super().__init__(backend=backend, device=device, dtype=dtype)
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = None if padding_idx is None else int(padding_idx) % self.num_embeddings
        w = host_rng(seed).standard_normal((self.num_embeddings, self.embedding_dim))
        if self.padding_idx is not None:
            w[self.padding_idx] = 0.0
        be = self.backend
        self.weight = Parameter(be.from_host(w.astype(be.dtype_name)))
        self.clear_cache()

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """``weight (num_embeddings, embedding_dim)``; ``padding_idx`` must be a row index or None."""
        v = check_positive_int("num_embeddings", config.get("num_embeddings"))
        d = check_positive_int("embedding_dim", config.get("embedding_dim"))
        pad = config.get("padding_idx")
        if pad is not None and (isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or not -v <= pad < v):
            raise ValueError(f"Embedding padding_idx must be None or an integer in [-{v}, {v}), got {pad!r}")
        return {"weight": (v, d)}

    def forward(self, x: Any) -> Any:
        be = self._backend
        if not be.owns(x):
            be.check(x, role="Embedding indices")  # raises the TypeError naming both places
        ops = be.ops
        if dtype_kind(ops.xp, x.dtype) != "i":
            raise TypeError(f"Embedding takes integer indices, got dtype {x.dtype}; convert them (e.g. x.astype(int))")
        flat = ops.xp.reshape(x, (-1,))
        info = ops.xp.iinfo(flat.dtype)
        if info.bits < 32 or info.max < self.num_embeddings:  # 8- and 16-bit ids: compare, gather and scatter in
            flat = ops.xp.astype(flat, ops.xp.int32)  # int32 (num_embeddings fits; torch gathers with 32 or 64 bits)
        if flat.shape[0] and not ops.is_traced(flat) and not ops.all((flat >= 0) & (flat < self.num_embeddings)):
            low, high = int(ops.min(flat)), int(ops.max(flat))
            raise ValueError(
                f"Embedding({self.num_embeddings}, {self.embedding_dim}): indices must be in "
                f"[0, {self.num_embeddings}), got values from {low} to {high}"
            )
        out_shape = (*x.shape, self.embedding_dim)
        self.save_for_backward(flat, out_shape)
        return ops.xp.reshape(ops.xp.take(self.weight.data, flat, axis=0), out_shape)

    def backward(self, grad: Any, *, input_grad: bool = True) -> None:
        """Accumulate ``dL/dW`` (repeated indices add up, ``padding_idx`` excluded); return None."""
        indices, out_shape = self.saved_tensors()
        be = self._backend
        grad = check_grad(self, grad, out_shape, be)
        if not self.weight.requires_grad:  # frozen: no scatter-add
            return None
        xp = be.xp
        rows = xp.reshape(grad, (math.prod(out_shape[:-1]), self.embedding_dim))
        if self.padding_idx is not None:  # a where, not a product with 0: an inf gradient must not become NaN
            rows = xp.where((indices != self.padding_idx)[:, None], rows, xp.zeros_like(rows))
        table = xp.zeros(self.weight.data.shape, dtype=rows.dtype, device=be.device)
        accumulate(self.weight, be.ops.index_add(table, indices, rows))
        return None


@register_layer
class TokenAndPosition(Layer):
    """``y[n, t] = E_tok[x[n, t]] + E_pos[t]``: what each token is, plus where it stands (GPT's input layer).

    Two [`Embedding`][nu_xp.layers.embedding.Embedding] tables, ``tok`` ``(vocab_size, width)`` and ``pos``
    ``(context, width)``, both drawn from N(0, 0.02²) as GPT-2 does. Input: integer ids ``(N, L)`` with
    ``L <= context``; output ``(N, L, width)``. Backward: each ``E_tok`` row gets the gradients of the places
    that read it, and ``E_pos[t]`` gets ``Σ_n g[n, t]``, the sum over the batch (every sequence reads the
    same position row). Indices have no gradient: ``backward`` returns None.

    Parameters
    ----------
    vocab_size : int
        The number of token ids.
    width : int
        The embedding width (the model's ``d_model``).
    context : int
        The longest sequence the position table covers.
    seed : int, optional
        Seed of the host generator that draws both tables.
    backend, device, dtype : optional
        Where the parameters live, as for every [`Layer`][nu_xp.layers.base.Layer].

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> embed = nu_xp.TokenAndPosition(vocab_size=10, width=4, context=8, seed=0)
    >>> embed(np.array([[1, 2, 3]])).shape
    (1, 3, 4)
    """

    takes_indices = True

    def __init__(
        self,
        vocab_size: int,
        width: int,
        context: int,
        seed: int | None = None,
        *,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        self.width = check_positive_int("width", width)
        self.context = check_positive_int("context", context)
        where = {"backend": backend, "device": device, "dtype": dtype}
        rng = host_rng(seed)
        self.tok = Embedding(self.vocab_size, self.width, **where)
        self.pos = Embedding(self.context, self.width, **where)
        for emb in (self.tok, self.pos):  # GPT-2's N(0, 0.02²), not Embedding's N(0, 1)
            be = emb.backend
            emb.weight.data = be.from_host(rng.normal(0.0, 0.02, emb.weight.shape).astype(be.dtype_name))

    def forward(self, x: Any) -> Any:
        length = x.shape[1]
        if length > self.context:
            raise ValueError(
                f"TokenAndPosition: sequences may be at most context={self.context} tokens long, got {length}"
            )
        be = self.tok.backend
        positions = be.xp.arange(length, device=be.device)
        return self.tok(x) + self.pos(positions)[None, ...]

    def backward(self, grad: Any) -> None:
        self.pos.backward(self.tok.backend.ops.sum(grad, axis=0))
        self.tok.backward(grad)
        return None
